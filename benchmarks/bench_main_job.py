"""The main job before and after: ``gpubench run --suite matmul`` for a git revision and for the working tree.

    python benchmarks/bench_main_job.py --before REV [--suite matmul] [--quick] [--repeat N] [--warm]
                                        [-- EXTRA gpubench run ARGS]

``REV`` (a commit, tag or branch) is exported with ``git archive`` into a temporary directory and
run from there (``PYTHONPATH`` points at it, so it and its worker processes import that gpubench);
the working tree is run as it is. Both run the same suite with the same options (``--quick``,
``--budget``, ``--target`` and anything after ``--`` go to both), each into a throwaway store of its
own in the temporary directory, so each starts with an empty reference cache beside its store — the
first run on a new machine. With ``--repeat N`` the two alternate (before, after, after, before, ...)
so that a drift of the machine hits both alike; ``--warm`` adds one more run of the working tree
that reuses the reference cache its first run filled.

It prints:

* the wall time of each ``gpubench run`` (start-up, probes and the report included) and the ratio
  after/before — the main job's speed-up;
* per case, before and after: the case's wall time and the share of it spent outside its measured
  calls (``1 − Σ samples × calls per sample / wall``: imports, inputs, reference, verification,
  warm-up, calibration); after, also the share of the reference work (``metrics.reference_s`` +
  ``metrics.check_s``) and where the reference came from (``computed``, ``cached``, ``freivalds``);
* the two goals of issue 19: the main job at least 30 % faster, and for the 4096³ torch CPU float32
  case reference work under 10 % of the case's wall time.

A case present in only one of the runs (a changed suite, a backend only one side has) is listed and
left out of the per-case comparison; the wall-time ratio then compares different jobs, and says so.
Measure on a quiet machine; a full ``--suite matmul`` takes several minutes per run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: The case whose reference share issue 19 bounds (a proxy for a fast device), and the bound.
PROXY = {"workload": "matmul", "backend": "torch", "device": "cpu", "dtype": "float32", "size": 4096}
PROXY_SHARE = 0.10
GOAL_FASTER = 0.30


def export_revision(rev: str, dest: Path) -> Path:
    """``git archive REV`` unpacked into ``dest``, with suites/ and kernels/ placed inside the package as the
    wheel places them (an editable install maps them from the working tree, which must not leak in)."""
    dest.mkdir(parents=True)
    tar = dest.parent / "before.tar"
    subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", "-o", str(tar), rev], check=True)
    with tarfile.open(tar) as t:
        try:
            t.extractall(dest, filter="data")
        except TypeError:  # a Python without extraction filters (before 3.10.12 / 3.11.4): our own archive
            t.extractall(dest)
    tar.unlink()
    for data in ("suites", "kernels"):
        inside = dest / "gpubench" / data
        if (dest / data).is_dir() and not inside.exists():
            shutil.copytree(dest / data, inside)
    return dest


def run_job(tree: Path, where: Path, args: argparse.Namespace, extra: list[str], store: str = "store.sqlite") -> float:
    """One ``gpubench run`` of ``tree`` into ``where/store`` (reference cache ``where/refcache``); its wall time."""
    where.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "gpubench", "run", "--suite", args.suite, "--store", str(where / store)]
    if args.quick:
        cmd.append("--quick")
    cmd += extra
    env = dict(os.environ)
    env["PYTHONPATH"] = str(tree) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    for name in ("GPUBENCH_REFCACHE", "GPUBENCH_STORE"):  # a fresh cache beside the throwaway store
        env.pop(name, None)
    t0 = time.perf_counter()
    with open(where / (Path(store).stem + "-output.txt"), "w") as out:
        proc = subprocess.run(cmd, cwd=tree, env=env, stdout=out, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = (where / (Path(store).stem + "-output.txt")).read_text(errors="replace").strip().splitlines()[-5:]
        raise SystemExit(f"bench_main_job: {' '.join(cmd)} failed ({proc.returncode}) in {tree}:\n" + "\n".join(tail))
    return wall


def records(store: Path) -> dict[str, dict]:
    """The last run's records by case (the spec without its suite, as JSON)."""
    db = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT record FROM results WHERE run_id = (SELECT max(id) FROM runs)").fetchall()
    finally:
        db.close()
    out = {}
    for (text,) in rows:
        rec = json.loads(text)
        spec = dict(rec["spec"])
        spec.pop("suite", None)
        out[json.dumps(spec, sort_keys=True)] = rec
    return out


def label(key: str) -> str:
    s = json.loads(key)
    params = " ".join(f"{k}={v}" for k, v in sorted(s.get("params", {}).items()))
    variant = "" if s.get("variant", "default") == "default" else f"[{s['variant']}]"
    return f"{s['workload']} {s['backend']}{variant}:{s['device']} {s['dtype']} {params}"


def measured_s(rec: dict) -> float:
    return sum(rec.get("samples") or ()) * int(rec.get("number") or 1)


def outside(rec: dict) -> float | None:
    """Share of the case's wall time outside its measured calls (None for a case that did not run)."""
    wall = rec.get("wall_s") or 0.0
    if rec.get("status") not in ("ok", "incorrect") or wall <= 0:
        return None
    return max(0.0, 1.0 - measured_s(rec) / wall)


def reference_share(rec: dict) -> float | None:
    m = rec.get("metrics") or {}
    wall = rec.get("wall_s") or 0.0
    if "reference_s" not in m or wall <= 0:
        return None
    return (m["reference_s"] + m.get("check_s", 0.0)) / wall


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f} %"


def is_proxy(rec: dict) -> bool:
    s, p = rec["spec"], rec["spec"].get("params", {})
    return (s["workload"], s["backend"], s["device"], s["dtype"]) == tuple(PROXY[k] for k in
                                                                           ("workload", "backend", "device", "dtype")) \
        and p.get("m") == p.get("n") == p.get("k") == PROXY["size"] and "tf32" not in p and "timing" not in p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--before", required=True, metavar="REV", help="git revision to compare against")
    p.add_argument("--suite", default="matmul", help="suite to run (default: matmul, the main job)")
    p.add_argument("--quick", action="store_true", help="the suite's quick sizes and budget (to try this script)")
    p.add_argument("--repeat", type=int, default=1, help="alternating runs of each side (default 1)")
    p.add_argument("--warm", action="store_true", help="also time the working tree again on its filled cache")
    p.add_argument("--keep", metavar="DIR", help="keep stores and outputs in DIR (default: a deleted temp dir)")
    args = p.parse_args(argv)
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="gpubench-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        before_tree = export_revision(args.before, tmp / "before-tree")
        walls: dict[str, list[float]] = {"before": [], "after": []}
        stores: dict[str, list[Path]] = {"before": [], "after": []}
        for i in range(args.repeat):
            order = ("before", "after") if i % 2 == 0 else ("after", "before")
            for side in order:
                tree = before_tree if side == "before" else REPO
                where = tmp / f"{side}-{i}"
                wall = run_job(tree, where, args, extra)
                walls[side].append(wall)
                stores[side].append(where / "store.sqlite")
                print(f"{side:<6} run {i + 1}: {wall:7.1f} s", flush=True)
        warm = None
        if args.warm:
            warm = run_job(REPO, tmp / "after-0", args, extra, store="warm.sqlite")
            print(f"after  run on its filled cache: {warm:7.1f} s", flush=True)
        report(args, walls, stores, warm)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


def report(args: argparse.Namespace, walls: dict[str, list[float]], stores: dict[str, list[Path]],
           warm: float | None) -> None:
    before, after = records(stores["before"][0]), records(stores["after"][0])
    only = sorted(set(before) ^ set(after))
    common = [k for k in after if k in before]
    b, a = statistics.median(walls["before"]), statistics.median(walls["after"])
    print()
    print(f"main job (gpubench run --suite {args.suite}{' --quick' if args.quick else ''}), "
          f"median of {args.repeat} run{'s' if args.repeat > 1 else ''} per side:")
    print(f"  before {args.before}: {b:.1f} s   after (working tree): {a:.1f} s   "
          f"ratio after/before {a / b:.3f}  ({100 * (1 - a / b):+.1f} % faster; goal >= {100 * GOAL_FASTER:.0f} %)")
    if warm is not None:
        print(f"  after, reference cache already filled: {warm:.1f} s  (ratio to before {warm / b:.3f})")
    if only:
        print(f"  note: {len(only)} case(s) ran on one side only, so the two jobs differ:")
        for k in only:
            print(f"    {'before' if k in before else 'after '} only: {label(k)}")
    sums = {side: sum(r.get("wall_s") or 0 for r in recs.values()) for side, recs in (("before", before),
                                                                                       ("after", after))}
    print(f"  time inside cases: before {sums['before']:.1f} s, after {sums['after']:.1f} s "
          f"(the rest is start-up, probes, the store and the summary)")
    print()
    head = f"{'case':<66} {'status':<9} {'wall before':>11} {'after':>8} {'outside before':>14} {'after':>8} " \
           f"{'reference':>9}  source"
    print(head)
    print("-" * len(head))
    ran = [k for k in common if after[k].get("status") != "skipped" or before[k].get("status") != "skipped"]
    for k in sorted(ran, key=lambda k: -(after[k].get("wall_s") or 0)):
        rb, ra = before[k], after[k]
        status = ra["status"] if ra["status"] == rb["status"] else f"{rb['status']}>{ra['status']}"
        print(f"{label(k)[:66]:<66} {status:<9} {rb.get('wall_s') or 0:10.2f}s {ra.get('wall_s') or 0:7.2f}s "
              f"{pct(outside(rb)):>14} {pct(outside(ra)):>8} {pct(reference_share(ra)):>9}  "
              f"{(ra.get('metrics') or {}).get('reference_source', '-')}")
    proxy = [r for r in after.values() if is_proxy(r)]
    print()
    if not proxy:
        print("4096³ torch CPU float32 case: not in this run (the full suite has it; --quick does not)")
    for r in proxy:
        share = reference_share(r)
        verdict = "meets" if share is not None and share < PROXY_SHARE else "misses"
        print(f"4096³ torch CPU float32 case: reference work {pct(share)} of its {r['wall_s']:.2f} s wall "
              f"({(r.get('metrics') or {}).get('reference_source', '-')}); {verdict} the goal of < "
              f"{100 * PROXY_SHARE:.0f} %; outside measured calls {pct(outside(r))}")


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark: a PostgreSQL store under a team's load.

1. Concurrent writers: ``--writers`` (default 8) ``gpubench run --quick`` processes start at once and
   write into one PostgreSQL store. Each must end ``complete`` with every case of its suite stored
   (the number ``gpubench run --dry-run`` lists): nothing lost, nothing doubled.
2. A report from PostgreSQL: a run of ``--results`` (default 10,000) synthetic results is written
   through the store API (tests/synthetic_results.py), then ``gpubench report RUN --store URL`` is
   timed as a user runs it (target: under 5 s wall; its CPU time is printed too, the fairer figure on a
   busy machine), with the time to read the run back on its own.

Run: ``python benchmarks/bench_team_store.py [--url postgresql://…] [--writers 8] [--results 10000]
[--suite saxpy] [--backend NAME ...]``. Without ``--url`` it starts a throwaway PostgreSQL server
in a temporary directory, as the tests do (tests/pg_cluster.py; needs the server binaries, which
``bash scripts/system-deps.sh`` installs), and removes it afterwards. With ``--url`` it adds its runs
to that store (labelled ``bench-team-…``) and counts only those. Exit status 1 if a case was lost or
the report took 5 s or more.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from synthetic_results import calibration_run, synthetic_run  # noqa: E402

from gpubench.store import open_store  # noqa: E402

REPORT_TARGET_S = 5.0


def gpubench(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gpubench", *args], capture_output=True, text=True, cwd=REPO, **kw)


def expected_cases(suite: str, backends: list[str]) -> int:
    """How many cases one ``gpubench run --quick`` of the suite stores (every case, skipped ones too)."""
    proc = gpubench("run", "--suite", suite, "--quick", *[f"--backend={b}" for b in backends], "--dry-run",
                    check=True)
    return len(proc.stdout.splitlines())


def concurrent_writers(url: str, n: int, suite: str, backends: list[str], tag: str) -> bool:
    """Start ``n`` ``gpubench run --quick`` at once into ``url``; check each stored every case."""
    per_run = expected_cases(suite, backends)
    print(f"{n} concurrent writers: gpubench run --suite {suite} --quick"
          f"{''.join(' --backend ' + b for b in backends)} ({per_run} cases each)")
    t0 = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-m", "gpubench", "run", "--suite", suite, "--quick",
                               *[f"--backend={b}" for b in backends], "--label", f"{tag}-writer-{i}",
                               "--store", url], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              cwd=REPO) for i in range(n)]
    errors = [(p.wait(), p.stderr.read()) for p in procs]
    wall = time.perf_counter() - t0
    with open_store(url, readonly=True) as store:
        mine = {r.label: r for r in store.runs() if r.label.startswith(f"{tag}-writer-")}
        counts = {label: store.count_results(r.id) for label, r in mine.items()}
    ok = True
    for i, (code, err) in enumerate(errors):
        label = f"{tag}-writer-{i}"
        run = mine.get(label)
        stored = counts.get(label, 0)
        line = f"  writer {i}: exit {code}, run {run.id if run else '-'} {run.status if run else 'missing'}, " \
               f"{stored}/{per_run} cases stored"
        if code != 0 or run is None or run.status != "complete" or stored != per_run:
            ok = False
            line += "  LOST" + (f" ({err.strip().splitlines()[-1]})" if err.strip() else "")
        print(line)
    total = sum(counts.values())
    print(f"  {total} of {n * per_run} cases stored in {wall:.1f} s wall: {'nothing lost' if ok else 'CASES LOST'}")
    return ok


def report_from_postgres(url: str, n: int, out_dir: Path, tag: str) -> bool:
    """Write a run of ``n`` results through the store API, then time ``gpubench report`` of it."""
    t0 = time.perf_counter()
    with open_store(url) as store:
        calibration_run(store, hostname=f"{tag}-host")
        run_id = synthetic_run(store, n, label=f"{tag}-report", hostname=f"{tag}-host")
        stored = store.count_results(run_id)
    made = time.perf_counter() - t0
    with open_store(url, readonly=True) as store:
        t0 = time.perf_counter()
        results = store.results(run_id)
        read = time.perf_counter() - t0
    out = out_dir / "report.html"
    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = gpubench("report", str(run_id), "-o", str(out), "--store", url)
    wall = time.perf_counter() - t0
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)
    if proc.returncode != 0:
        print(f"gpubench report failed: {proc.stderr.strip()}")
        return False
    ok = wall < REPORT_TARGET_S
    print(f"report of {stored} results from PostgreSQL (written in {made:.1f} s): gpubench report {wall:.2f} s wall, "
          f"{cpu:.2f} s CPU (target < {REPORT_TARGET_S:g} s wall: {'met' if ok else 'MISSED'}); reading the "
          f"{len(results)} records "
          f"back alone {read:.2f} s; {out.stat().st_size / 1e6:.1f} MB")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a PostgreSQL store to use (default: a throwaway server)")
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--results", type=int, default=10_000)
    parser.add_argument("--suite", default="saxpy")
    parser.add_argument("--backend", action="append", default=[], help="only these backends (default: all)")
    args = parser.parse_args(argv)
    tag = f"bench-team-{uuid.uuid4().hex[:8]}"
    cluster = None
    url = args.url
    if url is None:
        from pg_cluster import Cluster, find_bindir

        bindir = find_bindir()
        if bindir is None:
            print("no PostgreSQL server binaries (initdb, pg_ctl): bash scripts/system-deps.sh, or pass --url")
            return 2
        cluster = Cluster(bindir).start()
        url = cluster.new_store_url()
        version = subprocess.run([str(bindir / "pg_ctl"), "--version"], capture_output=True, text=True).stdout.strip()
        print(f"throwaway server: {version}, in {cluster.root}")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            open_store(url).close()  # created once, so the writers race on writing, not on creating
            ok = concurrent_writers(url, args.writers, args.suite, args.backend, tag)
            ok = report_from_postgres(url, args.results, Path(tmp), tag) and ok
    finally:
        if cluster is not None:
            cluster.stop()
    return 0 if ok else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())

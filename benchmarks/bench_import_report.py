"""Benchmark: reading imported plain pytest-benchmark cases (target: ``gpubench report`` of 10,000 in under 5 s).

Every case of a plain pytest-benchmark file is stored with its test id as the workload, a name no
plug-in provides; each reader asks the workload registry about it several times per case. Before
the registry read its entry points once per process, each of those questions rescanned every
installed distribution (16-20 s for a report of 1,000 such cases; a ``show`` of 83,000 never
finished).

Run: ``python benchmarks/bench_import_report.py [N ...]`` (default 10000). For each N it writes a
pytest-benchmark JSON file of N plain benchmarks, imports it into a fresh store, then times
``gpubench report`` and ``gpubench show`` of it, each in a fresh process as a user runs them (wall
clock, and the CPU time of the child, which is the fairer figure on a busy machine).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: Target for ``gpubench report`` of 10,000 imported cases, in seconds (issue 22 item 11).
TARGET_S = 5.0


def bench_file(n: int) -> dict:
    """A pytest-benchmark file of ``n`` plain benchmarks (three rounds each), as pytest-benchmark 4 writes them."""
    return {
        "machine_info": {"node": "bench-host", "processor": "x86_64", "machine": "x86_64", "system": "Linux",
                         "release": "6.1", "python_version": "3.11.7", "python_implementation": "CPython",
                         "cpu": {"brand_raw": "Benchmark CPU", "count": 8, "flags": ["avx2", "fma"]}},
        "commit_info": {"id": "0123456789abcdef0123", "branch": "main", "dirty": False},
        "datetime": "2024-01-01T00:00:00", "version": "4.0.0",
        "benchmarks": [{"group": f"group{i % 10}", "name": f"test_case[{i}]", "fullname": f"tests/t.py::test_case[{i}]",
                        "params": {"i": i}, "param": str(i), "extra_info": {},
                        "options": {"disable_gc": False, "timer": "perf_counter", "min_rounds": 3},
                        "stats": {"data": [1e-4 * (1 + i % 7) * f for f in (1.0, 1.02, 0.99)], "iterations": 10,
                                  "rounds": 3}}
                       for i in range(n)],
    }


def timed(*args: str, env: dict[str, str]) -> tuple[float, float]:
    """Run ``python -m gpubench ARGS`` in a fresh process; return (wall seconds, child CPU seconds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "gpubench", *args], env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"gpubench {' '.join(args)} failed: {proc.stderr.strip()}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(n: int = 10_000) -> float:
    """Import ``n`` plain cases, time report and show; print and return the report's wall seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.json"
        path.write_text(json.dumps(bench_file(n)))
        env = {**os.environ, "GPUBENCH_STORE": str(Path(tmp) / "store.sqlite")}
        imported = timed("import", str(path), env=env)
        report = timed("report", "-o", str(Path(tmp) / "report.html"), env=env)
        show = timed("show", env=env)
    verdict = "" if n != 10_000 else f"  (target under {TARGET_S:g} s: {'met' if report[0] < TARGET_S else 'MISSED'})"
    print(f"{n} imported plain cases: import {imported[0]:.2f} s; "
          f"report {report[0]:.2f} s wall, {report[1]:.2f} s CPU; "
          f"show {show[0]:.2f} s wall, {show[1]:.2f} s CPU{verdict}")
    return report[0]


if __name__ == "__main__":
    for arg in sys.argv[1:] or ["10000"]:
        main(int(arg))

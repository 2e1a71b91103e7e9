"""Benchmark: ``gpubench report`` on a store of 10,000 synthetic results (target: under 5 s).

Run: ``python benchmarks/bench_report.py [N]``. Prints the time to load the runs from the store,
render the page and write it (wall clock, and CPU time of this process, which is the fairer
figure on a busy machine), and the size of the file.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from synthetic_results import make_store  # noqa: E402

from gpubench.report.build import build_report  # noqa: E402


def main(n: int = 10_000) -> float:
    """Build the store, time the report, print and return the seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        store = make_store(Path(tmp) / "store.sqlite", n_results=n)
        made = time.perf_counter() - t0
        with store:
            t0, c0 = time.perf_counter(), time.process_time()
            path, runs = build_report(store, ["latest"], Path(tmp) / "report.html")
            elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        cases = sum(len(r.rows) for r in runs)
        print(f"store of {store.path.name}: {cases} results made in {made:.1f} s; "
              f"report in {elapsed:.2f} s wall, {cpu:.2f} s CPU ({path.stat().st_size / 1e6:.1f} MB)")
    return elapsed


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)

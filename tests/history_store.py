"""A store of several runs of one machine over a series of commits, with a known step (for history and load tests).

Records go through the real :class:`CaseResult` validation and :class:`ResultStore`; only the timings
are made up: run ``step_at`` and later are ``step`` times slower for torch:cpu matmul 512³.
"""

from __future__ import annotations

import random
from pathlib import Path

from synthetic_results import environment, samples

from gpubench.records import CaseResult, CaseSpec
from gpubench.store import ResultStore

COMMITS = [f"{i:02d}" + "abcdef0123456789" * 2 + f"{i:06d}" for i in range(1, 40)]


def commit(i: int) -> str:
    return COMMITS[i][:40]


def history_store(path: Path, n_runs: int = 12, step_at: int = 7, step: float = 1.3,
                  hostname: str = "bench-host", seed: int = 0) -> ResultStore:
    """``n_runs`` matmul runs (numpy and torch on the CPU, 256³ and 512³), one commit each."""
    rng = random.Random(seed)
    store = ResultStore(path)
    for i in range(n_runs):
        env = environment(hostname, gpu=False)
        env["git"] = {"project": {"commit": commit(i), "short": commit(i)[:10], "branch": "main",
                                  "dirty": i == 3},
                      "gpubench": {"version": "0.1.0"}}
        run = store.begin_run("matmul", baseline="numpy", label=f"nightly {i}", environment=env,
                              started_at=f"2026-01-{i + 1:02d}T03:00:00+00:00", command="gpubench run --suite matmul")
        for backend in ("numpy", "torch"):
            for size in (256, 512):
                base = 2.0 * size**3 / (40e9 if backend == "numpy" else 60e9)
                slow = step if (backend == "torch" and size == 512 and i >= step_at) else 1.0
                drift = 1 + rng.gauss(0, 0.01)
                spec = CaseSpec.make("matmul", backend, "cpu", "float32", {"m": size, "n": size, "k": size},
                                     suite="matmul")
                store.add_result(run, CaseResult(spec, "ok", samples=samples(base * slow * drift, 9, rng, 0.01),
                                                 flops=2.0 * size**3, bytes=3.0 * size * size * 4,
                                                 spec_hash="h" + backend, target_met=True,
                                                 device_name="Test CPU"))
        store.finish_run(run)
    return store

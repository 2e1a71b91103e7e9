"""Synthetic but valid result stores for report and compare tests (and the report benchmark).

Records go through the real :class:`CaseResult` validation and :class:`ResultStore`; only the
timings are made up (from a simple cost model with noise), so they are deterministic.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from gpubench.records import CaseResult, CaseSpec
from gpubench.store import ResultStore

GPU_NAME = "NVIDIA H100 80GB HBM3"


def environment(hostname: str = "synthetic-host", gpu: bool = True, extra_backend: str = "") -> dict[str, Any]:
    """A run environment shaped like :func:`gpubench.envinfo.capture_host` plus backend facts."""
    backends: dict[str, Any] = {
        "numpy": {"available": True, "numpy": "2.x", "devices": [{"id": "cpu", "name": "Test CPU", "kind": "cpu"}]},
        "torch": {"available": True, "torch": "2.x", "cuda": "12.8", "cudnn": 91000,
                  "devices": [{"id": "cpu", "name": "Test CPU", "kind": "cpu"}]
                  + ([{"id": "cuda:0", "name": GPU_NAME, "kind": "cuda"}] if gpu else [])},
    }
    if extra_backend:
        backends[extra_backend] = {"available": True, "devices": [{"id": "cpu", "name": extra_backend, "kind": "cpu"}]}
    return {
        "hostname": hostname,
        "cpu": {"model": "Test CPU 9000", "logical_cores": 32, "physical_cores": 16, "isa": ["avx2", "avx512f"]},
        "memory_bytes": 64 << 30, "os": "Linux test", "python": "3.11.0",
        "libraries": {"numpy": "2.x", "torch": "2.x"},
        "blas": [{"internal_api": "openblas", "version": "0.3", "num_threads": 16, "architecture": "Zen"}],
        "gpus": [{"name": GPU_NAME, "memory": "81559 MiB", "driver": "570.00", "bus_id": "0"}] if gpu else [],
        "backends": backends,
    }


def samples(median: float, n: int, rng: random.Random, noise: float = 0.02) -> tuple[float, ...]:
    """``n`` positive per-call times around ``median`` with a small right-skewed noise."""
    return tuple(median * (1 + abs(rng.gauss(0, noise))) for _ in range(n))


def matmul_result(backend: str, device: str, dtype: str, size: int, gflops: float, rng: random.Random,
                  n: int = 10, status: str = "ok", suite: str = "matmul", noise: float = 0.02,
                  **params: Any) -> CaseResult:
    """A matmul record whose median reaches ``gflops``."""
    spec = CaseSpec.make("matmul", backend, device, dtype, {"m": size, "n": size, "k": size, **params}, suite=suite)
    flops = 2.0 * size**3
    item = 8 if dtype == "float64" else 2 if dtype in ("float16", "bfloat16") else 4
    kw: dict[str, Any] = {}
    if status in ("skipped", "error", "timeout"):
        return CaseResult(spec, status, error=f"{backend}: synthetic {status} reason", spec_hash="h" + spec.backend)
    if status == "incorrect":
        kw = {"rel_error": 0.5, "tolerance": 1e-5, "error": "relative error 0.5 exceeds tolerance 1e-05"}
    return CaseResult(spec, status, samples=samples(flops / gflops / 1e9, n, rng, noise), flops=flops,
                      bytes=3.0 * size * size * item, device_name=GPU_NAME if device.startswith("cuda") else "Test CPU",
                      spec_hash="h" + spec.backend, target_met=True, **kw)


def synthetic_run(store: ResultStore, n_results: int, seed: int = 0, label: str = "", gpu: bool = True,
                  hostname: str = "synthetic-host", backend_name: str = "", device_name: str = "") -> int:
    """Add a run of about ``n_results`` cases (all workloads' shapes, every status) and return its id."""
    rng = random.Random(seed)
    run_id = store.begin_run("mixed", baseline="numpy", label=label,
                             environment=environment(hostname, gpu, backend_name), command="synthetic")
    plan = []
    cpu_backends = ["numpy", "torch"] + ([backend_name] if backend_name else [])
    sizes = [64 * 2**i for i in range(8)]
    for dtype in ("float32", "float64"):
        for size in sizes:
            for b in cpu_backends:
                cpu_rate = 50.0 * (1 - 1 / (1 + size / 256)) * (1.5 if b == "torch" else 1)
                plan.append(("matmul", b, "cpu", dtype, size, cpu_rate))
            if gpu:
                gpu_dev = device_name or "cuda:0"
                plan.append(("matmul", "torch", gpu_dev, dtype, size, 40000.0 * (size / 8192) ** 1.5 + 1))
                plan.append(("matmul_copy", "torch", gpu_dev, dtype, size, 8000.0 * (size / 8192) ** 1.2 + 0.5))
    with store.transaction():
        _fill_run(store, run_id, plan, rng, n_results, gpu, device_name)
    store.finish_run(run_id)
    return run_id


def _fill_run(store: ResultStore, run_id: int, plan: list, rng: random.Random, n_results: int, gpu: bool,
              device_name: str) -> None:
    results: list[CaseResult] = []
    i = 0
    while len(results) < n_results:
        kind, b, dev, dtype, size, rate = plan[i % len(plan)]
        rep = i // len(plan)
        i += 1
        params = {"include_transfer": True} if kind == "matmul_copy" else {}
        # Repeats beyond one pass vary a parameter so every case stays distinct.
        params.update({"tf32": bool(rep % 2)} if rep else {})
        status = "ok"
        if i % 97 == 0:
            status = "skipped"
        elif i % 211 == 0:
            status = "error"
        elif i % 307 == 0:
            status = "incorrect"
        r = matmul_result(b, dev, dtype, size + 8 * (rep // 2), rate * rng.uniform(0.9, 1.1), rng, status=status,
                          suite="mixed", **params)
        results.append(r)
        store.add_result(run_id, r)
    # Transfer and training-shaped cases, when there is room.
    if gpu:
        for memory in ("pinned", "pageable"):
            for direction in ("h2d", "d2h"):
                for nbytes in (4096, 1 << 20, 1 << 26):
                    spec = CaseSpec.make("transfer", "torch", device_name or "cuda:0", "float32",
                                         {"bytes": nbytes, "direction": direction, "memory": memory}, suite="mixed")
                    bw = (50 if memory == "pinned" else 15) * nbytes / (nbytes + 1e5)
                    store.add_result(run_id, CaseResult(spec, "ok", samples=samples(nbytes / bw / 1e9, 7, rng),
                                                        bytes=float(nbytes), spec_hash="t"))
    for b, dev, speed in (("numpy", "cpu", 1.0), ("torch", device_name or ("cuda:0" if gpu else "cpu"), 20.0)):
        spec = CaseSpec.make("mnist", b, dev, "float32", {"epochs": 3}, suite="mixed")
        curve = [{"epoch": e, "epoch_s": 10.0 / speed, "eval_accuracy": 0.9 + 0.02 * e} for e in range(1, 4)]
        store.add_result(run_id, CaseResult(spec, "ok", samples=samples(10.0 / speed, 3, rng), flops=1e12,
                                            spec_hash="m", metrics={"curve": curve, "time_to_target_s": 10.0 / speed,
                                                                    "target_accuracy": 0.9,
                                                                    "final_accuracy": curve[-1]["eval_accuracy"]}))


def calibration_run(store: ResultStore, hostname: str = "synthetic-host", gpu: bool = True) -> int:
    """A ``calibrate`` run with ceilings for the synthetic machine."""
    run_id = store.begin_run("calibrate", environment=environment(hostname, gpu))
    store.add_ceiling(run_id, "cpu", "peak_flops", 120.0, "GFLOP/s", dtype="float32", method="synthetic")
    store.add_ceiling(run_id, "cpu", "peak_flops", 60.0, "GFLOP/s", dtype="float64", method="synthetic")
    store.add_ceiling(run_id, "cpu", "mem_bw", 40.0, "GB/s", method="synthetic")
    if gpu:
        store.add_ceiling(run_id, "cuda", "peak_flops", 50000.0, "GFLOP/s", dtype="float32", method="synthetic")
        store.add_ceiling(run_id, "cuda", "peak_flops", 45000.0, "GFLOP/s", dtype="float64", method="synthetic")
        store.add_ceiling(run_id, "cuda", "mem_bw", 3000.0, "GB/s", method="synthetic")
    store.finish_run(run_id)
    return run_id


def make_store(path: Path, n_results: int = 200, runs: int = 1, **kw: Any) -> ResultStore:
    """A store at ``path`` with a calibration and ``runs`` synthetic runs (returned open)."""
    store = ResultStore(path)
    calibration_run(store, gpu=kw.get("gpu", True))
    for i in range(runs):
        synthetic_run(store, n_results, seed=i, label=kw.pop("label", "") if i == 0 else f"second {i}", **kw)
    return store


def attention_results(store: ResultStore, run_id: int, seed: int = 0, device: str = "cuda:0") -> list[CaseResult]:
    """Add attention cases (two kernels and NumPy, S 128–1024, both masks and passes, memory metrics) to a run."""
    rng = random.Random(seed)
    out = []
    plan = [("torch", "flash", device, 200e3, True), ("torch", "math", device, 80e3, False),
            ("numpy", "default", "cpu", 40.0, False)]
    for backend, variant, dev, peak_gflops, fused in plan:
        for s in (128, 256, 512, 1024):
            for causal in (False, True):
                for backward in (False, True):
                    spec = CaseSpec.make("attention", backend, dev, "bfloat16" if dev != "cpu" else "float32",
                                         {"b": 1, "h": 12, "s": s, "d": 64, "causal": causal, "backward": backward},
                                         variant, suite="mixed")
                    flops = 4.0 * 12 * s * s * 64 / (2 if causal else 1) * (3.5 if backward else 1)
                    rate = peak_gflops * s / (s + 512)
                    work = 12 * s * 64 * 4 * (4 if backward else 1)
                    memory = work if fused else work + 12 * s * s * 4 * (2 if backward else 1)
                    r = CaseResult(spec, "ok", samples=samples(flops / rate / 1e9, 7, rng), flops=flops,
                                   bytes=8.0 * 12 * s * 64, spec_hash="a", target_met=True,
                                   device_name=GPU_NAME if dev != "cpu" else "Test CPU",
                                   metrics={"peak_memory_bytes": memory, "memory_method": "synthetic"})
                    store.add_result(run_id, r)
                    out.append(r)
    return out


def cpu_machine_runs(store: ResultStore, seed: int = 0) -> list[int]:
    """A CPU-only machine's quick runs, shaped like the real ones (``gpubench run --suite matmul --quick`` and
    ``--suite mnist --quick`` on a 2-core VM with PoCL): several backends, variants and shapes, GPU cases
    skipped, MNIST curves of one and two epochs at very different times. Returns the run ids."""
    rng = random.Random(seed)
    env = environment("cpu-vm", gpu=False)
    env["backends"]["tensorflow"] = {"available": True, "devices": [{"id": "cpu", "name": "CPU", "kind": "cpu"}]}
    env["backends"]["opencl"] = {"available": True, "devices": [
        {"id": "opencl:0:0", "name": "pthread-CPU [Portable Computing Language]", "kind": "opencl",
         "hardware": "cpu", "details": {"platform": "Portable Computing Language", "type": "ALL | CPU"}}]}
    env["backends"]["cupy"] = {"available": False, "reason": "cupy: no CUDA driver found"}
    env["load_avg"] = [1.2, 0.9, 0.7]
    matmul = store.begin_run("matmul", baseline="numpy", environment=env, command="gpubench run --suite matmul --quick")
    shapes = [{"m": 128, "n": 128, "k": 128}, {"m": 512, "n": 512, "k": 512}, {"m": 64, "n": 256, "k": 128}]
    for backend, variant, rate in (("numpy", "default", 60.0), ("torch", "default", 80.0),
                                   ("tensorflow", "default", 40.0), ("opencl", "blocked", 20.0),
                                   ("opencl", "tiled", 2.5)):
        for dtype in ("float32", "float64") if backend != "opencl" else ("float32",):
            for p in shapes:
                device = "opencl" if backend == "opencl" else "cpu"
                spec = CaseSpec.make("matmul", backend, device, dtype, p, variant=variant, suite="matmul")
                flops = 2.0 * p["m"] * p["n"] * p["k"]
                item = 8 if dtype == "float64" else 4
                noisy = rng.random() < 0.3
                store.add_result(matmul, CaseResult(
                    spec, "ok", samples=samples(flops / (rate * rng.uniform(0.7, 1.3)) / 1e9, 9, rng, 0.05),
                    flops=flops, bytes=float((p["m"] * p["k"] + p["k"] * p["n"] + p["m"] * p["n"]) * item),
                    spec_hash="c" + backend, target_met=not noisy, flags=("noisy",) if noisy else ()))
        if backend in ("torch", "tensorflow", "cupy"):
            for p in shapes:
                spec = CaseSpec.make("matmul", backend, "cuda", "float32", p, suite="matmul")
                store.add_result(matmul, CaseResult(spec, "skipped", error=f"{backend}: no cuda device found"))
    for variant in ("cublas", "naive", "tiled"):
        for p in shapes:
            spec = CaseSpec.make("matmul", "cupy", "cuda", "float32", p, variant=variant, suite="matmul")
            store.add_result(matmul, CaseResult(spec, "skipped", error="cupy: no CUDA driver found"))
    store.finish_run(matmul)
    mnist = store.begin_run("mnist", baseline="numpy", environment=env, command="gpubench run --suite mnist --quick")
    for backend, speed in (("numpy", 1.0), ("tensorflow", 1.6), ("torch", 2.2)):
        for model, optimizer, epochs, epoch_s, target in (("mlp", "sgd", 2, 0.17, 0.85), ("mlp", "adam", 2, 0.35, 0.85),
                                                          ("cnn", "adam", 1, 10.0, 0.7)):
            params = {"model": model, "optimizer": optimizer, "epochs": epochs, "data": "offline",
                      "train_size": 2000 if model == "mlp" else 1000, "eval_size": 1000, "batch_size": 100}
            spec = CaseSpec.make("mnist", backend, "cpu", "float32", params, suite="mnist")
            t = epoch_s / speed
            curve = [{"epoch": e, "epoch_s": t, "eval_accuracy": 0.75 + 0.05 * e if model == "mlp" else 0.43}
                     for e in range(1, epochs + 1)]
            reached = next((t * e for e, c in enumerate(curve, 1) if c["eval_accuracy"] >= target), None)
            store.add_result(mnist, CaseResult(
                spec, "ok", samples=(t,), flops=3e9, spec_hash="m" + backend, target_met=False, flags=("noisy",),
                metrics={"curve": curve, "final_accuracy": curve[-1]["eval_accuracy"], "samples_per_s": 2000 / t,
                         "time_to_target_s": reached, "target_accuracy": target}))
        spec = CaseSpec.make("mnist", backend if backend != "numpy" else "cupy", "cuda", "float32",
                             {"model": "mlp", "optimizer": "sgd", "epochs": 2}, suite="mnist")
        store.add_result(mnist, CaseResult(spec, "skipped", error="no cuda device found"))
    store.finish_run(mnist)
    cal = store.begin_run("calibrate", environment=env, command="gpubench calibrate --quick")
    store.add_ceiling(cal, "cpu", "peak_flops", 45.0, "GFLOP/s", dtype="float32", method="matmul 256³")
    store.add_ceiling(cal, "cpu", "peak_flops", 22.0, "GFLOP/s", dtype="float64", method="matmul 256³")
    store.add_ceiling(cal, "cpu", "mem_bw", 20.0, "GB/s", method="saxpy")
    store.add_ceiling(cal, "opencl", "mem_bw", 8.0, "GB/s", method="saxpy")
    store.finish_run(cal)
    return [matmul, mnist, cal]


#: The lecture suite's series on the synthetic machine: (backend, device, seconds per 5000³ call by gpubench,
#: seconds per call as the lecture's clock sees it). GPU calls return at their launch (~20 µs).
LECTURE_PLAN = (("numpy", "cpu", 3.0, 3.0), ("tensorflow", "cpu", 2.4, 2.4), ("torch", "cpu", 2.6, 2.6),
                ("jax", "cpu", 2.5, 12e-6), ("torch", "cuda:0", 5.6e-3, 21e-6), ("tensorflow", "cuda:0", 6.2e-3, 35e-6),
                ("jax", "cuda:0", 5.9e-3, 18e-6), ("cupy", "cuda:0", 5.5e-3, 15e-6))


def lecture_results(store: ResultStore, run_id: int, seed: int = 0, gpu: bool = True, size: int = 5000,
                    suite: str = "lecture") -> list[CaseResult]:
    """The lecture suite's cases timed three ways (``timing`` = lecture, host_sync, gpubench), added to a run.

    Way-1 records are shaped like the case path's: clock ``unsynchronized``, flag ``not_a_measurement``, and on
    the GPU above the datasheet peak, so flagged ``implausible`` with the ceiling they broke.
    """
    from gpubench.plausibility import Ceiling, judge

    rng = random.Random(seed)
    flops = 2.0 * size**3
    scale = (size / 5000) ** 3
    peak = Ceiling("compute float32", 67000.0, "GFLOP/s", "datasheet H100 SXM")
    out = []
    for backend, device, honest_s, lecture_s in LECTURE_PLAN:
        if device != "cpu" and not gpu:
            spec = CaseSpec.make("matmul", backend, device, "float32", {"size": size}, suite=suite)
            out.append(CaseResult(spec, "skipped", error=f"{backend}: no cuda device found"))
            continue
        gpu_case = device != "cpu"
        for timing, seconds, n in (("lecture", lecture_s if gpu_case or backend == "jax" else honest_s, 10),
                                   ("host_sync", honest_s * 1.01, 10), ("gpubench", honest_s, 12)):
            params: dict[str, Any] = {"m": size, "n": size, "k": size}
            if timing != "gpubench":
                params["timing"] = timing
            variant = "cublas" if backend == "cupy" else "default"
            spec = CaseSpec.make("matmul", backend, device, "float32", params, variant, suite=suite)
            secs = seconds * (scale if timing != "lecture" or not gpu_case else 1.0)
            kw: dict[str, Any] = {"clock": "cuda_event" if timing == "gpubench" and backend in ("torch", "cupy")
                                  and gpu_case else "perf_counter"}
            flags: list[str] = []
            metrics: dict[str, Any] = {}
            if timing == "lecture":
                kw["clock"] = "unsynchronized"
                flags.append("not_a_measurement")
            if gpu_case:
                metrics["physical_ceiling"] = {"name": peak.name, "value": peak.value, "unit": peak.unit,
                                               "source": peak.source}
                verdict = judge(flops / secs / 1e9, peak)
                if verdict is not None:
                    flags.append("implausible")
                    metrics["implausible"] = verdict
            r = CaseResult(spec, "ok", samples=samples(secs, n, rng), flops=flops, bytes=3.0 * size * size * 4,
                           device_name=GPU_NAME if gpu_case else "Test CPU", spec_hash="l" + backend,
                           target_met=True if timing == "gpubench" else None, flags=tuple(flags), metrics=metrics,
                           **kw)
            store.add_result(run_id, r)
            out.append(r)
    return out


def lecture_run(store: ResultStore, seed: int = 0, gpu: bool = True, label: str = "", size: int = 5000,
                hostname: str = "synthetic-host") -> int:
    """A finished ``lecture`` suite run (see :func:`lecture_results`); its id."""
    run_id = store.begin_run("lecture", baseline="numpy", label=label, environment=environment(hostname, gpu),
                             command="gpubench run --suite lecture")
    lecture_results(store, run_id, seed, gpu, size)
    store.finish_run(run_id)
    return run_id

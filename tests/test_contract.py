"""The backend contract, over everything installed: every backend × every workload it implements × every device
it drives ends as a correct measurement, a valid record of it, or a skip with its reason — never an error.

One real ``gpubench run`` of a generated suite: each built-in workload at its smallest size, with no backend or
device named (so every installed backend, built-in or plug-in, and every device kind it declares take part),
on the quick profile with a 0.05 s budget. A device this machine lacks is a skip with the reason; a device it has runs.
"""

from __future__ import annotations

import json

import pytest
from conftest import run_gpubench

from gpubench.backends import backend_names, get_backend
from gpubench.store import ResultStore
from gpubench.workloads import get_workload, workload_names

#: The smallest case of each built-in workload (its dtype and parameters). A new built-in workload adds a line.
SMALLEST: dict[str, tuple[str, dict]] = {
    "matmul": ("float32", {"m": 32, "n": 32, "k": 32}),
    "matmul_fp8": ("float8_e4m3fn", {"m": 32, "n": 32, "k": 32}),
    "saxpy": ("float32", {"n": 4096}),
    "conv2d": ("float32", {"n": 1, "c": 2, "h": 8, "w": 8, "k": 4, "r": 3, "s": 3}),
    "transfer": ("float32", {"bytes": 4096}),
    "attention": ("float32", {"b": 1, "h": 1, "s": 16, "d": 8}),
    "mnist": ("float32", {"model": "mlp", "epochs": 1, "train_size": 200, "eval_size": 200,
                          "target_accuracy": 0.1, "accuracy_tolerance": 0.05}),
    "all_reduce": ("float32", {"bytes": 4096, "ranks": 2}),
    "all_gather": ("float32", {"bytes": 4096, "ranks": 2}),
    "broadcast": ("float32", {"bytes": 4096, "ranks": 2}),
    "inference": ("float32", {"model": "mlp", "batch": 1}),
    "input_pipeline": ("float32", {"images": 8, "image_size": 40, "crop": 32, "batch_size": 4, "steps": 2,
                                   "windows": 2}),
    "ddp_training": ("float32", {"model": "cnn", "global_batch": 16, "steps": 2, "ranks": 1}),
}


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


def test_every_builtin_workload_has_a_smallest_case():
    from importlib.metadata import entry_points

    builtin = {ep.name for ep in entry_points(group="gpubench.workloads") if ep.value.startswith("gpubench.")}
    assert builtin <= set(SMALLEST), f"add the smallest case of {sorted(builtin - set(SMALLEST))} to SMALLEST"
    for name, (_, params) in SMALLEST.items():
        get_workload(name).normalize_params(params)  # each is a valid case


@pytest.mark.slow
def test_every_backend_workload_and_device_gives_a_result_or_a_reason(tmp_path, store_path):
    suite = tmp_path / "contract.toml"
    lines = ['name = "contract"', 'baseline = "numpy"', "timeout_s = 300", ""]
    wanted = [w for w in workload_names() if w in SMALLEST]
    for name in wanted:
        dtype, params = SMALLEST[name]
        lines += ["[[cases]]", f'workload = "{name}"', f'dtypes = ["{dtype}"]',
                  "params = { " + ", ".join(f"{k} = {_toml(v)}" for k, v in params.items()) + " }", ""]
    suite.write_text("\n".join(lines))
    proc = run_gpubench("run", "--suite", str(suite), "--quick", "--budget", "0.05", timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]

    with ResultStore(store_path, readonly=True) as store:  # every record is validated as it is read
        run = store.run("latest")
        results = store.results(run.id)
    env = run.environment["backends"]
    problems = [f"{r.spec.label()}: {r.status}: {r.error}" for r in results if r.status not in ("ok", "skipped")]
    assert not problems, "\n".join(problems)
    for r in results:
        if r.status == "ok":
            assert r.samples and r.median_s > 0 and r.spec_hash and r.device_name, r.spec.label()
            assert r.rel_error is not None and r.tolerance is not None and 0 <= r.rel_error <= r.tolerance, \
                r.spec.label()
        else:
            assert r.error.strip() and r.error != "no reason given", r.spec.label()

    # Coverage: each backend × workload it implements × device kind it drives has a result; on a device
    # this machine has (the backend reported it), at least one case of each workload ran or said why not.
    by_case: dict[tuple[str, str, str], list] = {}
    for r in results:
        by_case.setdefault((r.spec.backend, r.spec.workload, r.spec.device.split(":")[0]), []).append(r)
    for name in backend_names():
        backend = get_backend(name)
        for workload in backend.workloads():
            if workload not in wanted:
                continue
            kinds = {k for v in backend.variants(workload) for k in backend.variant_device_kinds(workload, v)}
            for kind in kinds:
                assert (name, workload, kind) in by_case, f"no result for {name} {workload} on {kind}"
        info = env.get(name) or {}
        for device in info.get("devices") or [] if info.get("available") else []:
            kind = str(device.get("kind") or device["id"].split(":")[0])
            ran = [r for w in backend.workloads() if w in wanted for r in by_case.get((name, w, kind), [])]
            assert ran, f"{name} reported {device['id']} but no case ran on it"

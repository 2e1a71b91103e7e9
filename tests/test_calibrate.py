"""``gpubench calibrate``: the plan, the derived ceilings, a real quick CPU calibration, and its use."""

from __future__ import annotations

import random
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from synthetic_results import matmul_result  # noqa: E402

from gpubench.calibrate import derive_ceilings, plan  # noqa: E402
from gpubench.records import CaseResult, CaseSpec  # noqa: E402
from gpubench.report.model import load_runs  # noqa: E402
from gpubench.store import (  # noqa: E402
    MEM_BW,
    PEAK_FLOPS,
    ResultStore,  # noqa: E402
)


def test_plan_covers_compute_memory_and_transfers():
    specs = plan(("torch",), quick=True)
    keys = {(s.workload, s.device, s.dtype, s.param_dict.get("tf32", False), s.param_dict.get("direction"))
            for s in specs}
    assert ("matmul", "cpu", "float32", False, None) in keys
    assert ("matmul", "cpu", "float64", False, None) in keys
    assert ("matmul", "cuda", "float32", True, None) in keys  # tf32 tensor cores
    assert ("matmul", "cuda", "bfloat16", False, None) in keys
    assert ("saxpy", "cuda", "float32", False, None) in keys
    assert all(s.suite == "calibrate" for s in specs)
    transfers = {s.param_dict.get("direction") for s in specs if s.workload == "transfer"}
    assert transfers in (set(), {"h2d", "d2h", "d2d"})  # present where torch implements transfer
    assert plan(("numpy",), devices=("cpu",), quick=True)  # a CPU-only backend still calibrates
    cpu_only = plan(("torch",), devices=("cpu",), quick=True)
    assert {s.device for s in cpu_only} == {"cpu"}


def test_derive_ceilings_takes_the_best_correct_case():
    rng = random.Random(0)
    results = [
        matmul_result("numpy", "cpu", "float32", 512, 100.0, rng, noise=0.0, suite="calibrate"),
        matmul_result("torch", "cpu", "float32", 512, 150.0, rng, noise=0.0, suite="calibrate"),
        matmul_result("torch", "cpu", "float32", 512, 900.0, rng, status="incorrect", suite="calibrate"),
        matmul_result("torch", "cuda", "float32", 512, 5000.0, rng, noise=0.0, suite="calibrate", tf32=True),
    ]
    spec = CaseSpec.make("saxpy", "numpy", "cpu", "float32", {"n": 1 << 20}, suite="calibrate")
    results.append(CaseResult(spec, "ok", samples=(1e-3,) * 5, bytes=12.0 * (1 << 20), flops=2.0 * (1 << 20)))
    got = {(c["device"], c["kind"], c["dtype"]): c for c in derive_ceilings(results)}
    assert got[("cpu", PEAK_FLOPS, "float32")]["value"] == 150.0
    assert "torch" in got[("cpu", PEAK_FLOPS, "float32")]["method"]
    assert got[("cuda", PEAK_FLOPS, "tf32")]["value"] == 5000.0
    assert abs(got[("cpu", MEM_BW, "")]["value"] - 12.0 * (1 << 20) / 1e-3 / 1e9) < 1e-9


def test_quick_calibration_on_cpu_stores_ceilings_the_report_uses(cli, store_path, tmp_path):
    code, out, err = cli("calibrate", "--quick", "--backend", "numpy", "--label", "cal")
    assert code == 0, err
    assert "peak_flops" in out and "mem_bw" in out
    with ResultStore(store_path) as store:
        cal = store.run("latest")
        assert cal.suite == "calibrate" and cal.environment.get("cpu")
        kinds = {(c["device"], c["kind"], c["dtype"]) for c in store.ceilings(cal.id)}
        assert {("cpu", "peak_flops", "float32"), ("cpu", "peak_flops", "float64"), ("cpu", "mem_bw", "")} <= kinds
        assert all(c["value"] > 0 for c in store.ceilings(cal.id))
    # A later benchmark run on this machine finds the calibration and gets % of the roofline.
    code, _, err = cli("run", "--suite", "saxpy", "--quick", "--backend", "numpy")
    assert code == 0, err
    with ResultStore(store_path) as store:
        runs = load_runs(store, None)
    assert runs[0].ceilings_run == cal.id
    out_path = tmp_path / "r.html"
    code, _, err = cli("report", "-o", str(out_path))
    assert code == 0, err
    text = out_path.read_text()
    assert f"ceilings from run {cal.id}" in text
    assert re.search(r"float32 roof [0-9.]+ GFLOP/s \(quick calibration, provisional\)", text)


def test_calibrate_bad_input(cli, store_path):
    code, _, err = cli("calibrate", "--backend", "nosuchbackend", "--quick")
    assert code == 2 and "unknown backend" in err
    code, _, err = cli("calibrate", "--backend", "numpy", "--device", "cuda", "--quick")
    assert code == 2 and "nothing to calibrate" in err

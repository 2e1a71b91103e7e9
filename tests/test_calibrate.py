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
from gpubench.store import MEM_BW, PEAK_FLOPS, ResultStore  # noqa: E402


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


def test_quick_calibration_is_a_provisional_roof_until_a_full_one(cli, store_path, tmp_path):
    code, out, err = cli("calibrate", "--quick", "--backend", "numpy", "--label", "cal")
    assert code == 0, err
    assert "peak_flops" in out and "mem_bw" in out and "provisional" in out
    with ResultStore(store_path) as store:
        quick = store.run("latest")
        assert quick.suite == "calibrate" and quick.environment.get("cpu")
        assert quick.settings["profile"] == "calibrate+quick"
        kinds = {(c["device"], c["kind"], c["dtype"]) for c in store.ceilings(quick.id)}
        assert {("cpu", "peak_flops", "float32"), ("cpu", "peak_flops", "float64"), ("cpu", "mem_bw", "")} <= kinds
        assert all(c["value"] > 0 for c in store.ceilings(quick.id))
        assert {c["quality"] for c in store.ceilings(quick.id)} == {"provisional"}
        # Alone, a quick calibration is the machine's roof, marked provisional.
        found, found_run = store.applicable_ceilings(quick)
        assert found_run == quick.id and {c["quality"] for c in found} == {"provisional"}
        # A full calibration of the same machine (its ceilings stored as calibrate stores them): the roof.
        full = store.begin_run("calibrate", settings={"profile": "calibrate"}, environment=quick.environment)
        for c in store.ceilings(quick.id):
            store.add_ceiling(full, c["device"], c["kind"], c["value"], c["unit"], dtype=c["dtype"],
                              method=c["method"])
        store.finish_run(full)
        # A later quick calibration does not displace it: measured ceilings win over provisional ones.
    code, _, err = cli("calibrate", "--quick", "--backend", "numpy")
    assert code == 0, err
    code, _, err = cli("run", "--suite", "saxpy", "--quick", "--backend", "numpy")
    assert code == 0, err
    with ResultStore(store_path) as store:
        runs = load_runs(store, None)
        assert runs[0].ceilings_run == full
        measured = [{**c, "quality": "measured"} for c in store.ceilings(full)]
        assert store.applicable_ceilings(store.run(quick.id)) == (measured, full)
    out_path = tmp_path / "r.html"
    code, _, err = cli("report", "-o", str(out_path))
    assert code == 0, err
    text = out_path.read_text()
    assert f"ceilings from run {full}" in text
    assert re.search(r"float32 roof [0-9.]+ GFLOP/s \(measured\)", text)
    assert "quick calibration, provisional" not in text


def test_calibrate_runs_the_default_variant_and_fails_when_a_ceiling_case_fails(cli, store_path, fake_plugin,
                                                                              monkeypatch):
    assert {s.variant for s in plan(("opencl",), quick=True) if s.workload == "matmul"} == {"tiled"}
    # The fake plug-in's default (first) variant is chosen by the environment of its worker.
    monkeypatch.setenv("GPUBENCH_FAKE_DEFAULT_VARIANT", "good")
    code, out, err = cli("calibrate", "--quick", "--backend", "fake")
    assert code == 0, err
    monkeypatch.setenv("GPUBENCH_FAKE_DEFAULT_VARIANT", "raise")
    monkeypatch.delitem(sys.modules, "gpubench_fakeplugin.ops.matmul")  # the plan reads VARIANTS again
    code, out, err = cli("calibrate", "--quick", "--backend", "fake")
    assert code == 1
    assert "error: matmul fake[raise]:cpu float32" in err and "fake kernel launch failed" in err
    assert "2 ceiling case(s) failed" in err


def test_memory_ceilings_need_four_times_the_cache():
    spec = CaseSpec.make("saxpy", "numpy", "cpu", "float32", {"n": 1 << 20}, suite="calibrate")
    small = CaseResult(spec, "ok", samples=(1e-3,) * 5, bytes=12.0 * (1 << 20), metrics={"llc_bytes": 32 << 20})
    assert derive_ceilings([small]) == []  # 12 MiB moved, 32 MiB cache
    assert derive_ceilings([small], cache_factor=0)  # --quick: provisional, any size
    big = CaseResult(spec, "ok", samples=(1e-3,) * 5, bytes=float(128 << 20), metrics={"llc_bytes": 32 << 20})
    assert derive_ceilings([big])
    wrong = CaseResult(spec, "ok", samples=(1e-9,) * 5, bytes=float(128 << 20), flags=("implausible",))
    assert derive_ceilings([wrong]) == []
    from gpubench.cacheflush import host_cache_bytes
    from gpubench.calibrate import saxpy_n, vector_bytes

    assert saxpy_n("cpu", quick=False, available=1 << 40) * 4 >= 4 * host_cache_bytes()[0]
    assert vector_bytes("cuda", quick=False) >= 4 * 96 * 10**6  # the largest L2 in the datasheet table


def test_calibrate_bad_input(cli, store_path):
    code, _, err = cli("calibrate", "--backend", "nosuchbackend", "--quick")
    assert code == 2 and "unknown backend" in err
    code, _, err = cli("calibrate", "--backend", "numpy", "--device", "cuda", "--quick")
    assert code == 2 and "nothing to calibrate" in err

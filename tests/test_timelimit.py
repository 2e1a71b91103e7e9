"""``--time-limit``: durations, the cost model, the order of a run, and a runner that keeps the best part.

Deterministic: the cost model runs with fixed rates, the runner with a fake clock that advances by each
case's scripted duration (its real worker is the test plug-in backend, which answers at once).
"""

from __future__ import annotations

import json

import pytest
from conftest import run_gpubench

from gpubench.errors import UsageError
from gpubench.estimate import CostModel, DeviceRates, TimeBudget, format_duration, parse_duration
from gpubench.harness import HarnessSettings
from gpubench.profile import QUICK
from gpubench.records import CaseResult, CaseSpec
from gpubench.runner import Runner
from gpubench.spec import run_order, sweep_key, telling_tiers
from gpubench.store import ResultStore

# --- durations --------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, seconds", [("90", 90), ("90s", 90), ("8m", 480), ("1h", 3600), ("1h30m", 5400),
                                           ("4m45s", 285), ("2.5m", 150), (" 8M ", 480), (30, 30), (1.5, 1.5)])
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["none", "inf", "off", "NONE"])
def test_no_limit(text):
    assert parse_duration(text) is None


@pytest.mark.parametrize("text", ["", "0", "0s", "-5m", "abc", "5x", "1m1m", "m", "5 minutes", "nan", True])
def test_bad_durations_are_usage_errors(text):
    with pytest.raises(UsageError, match="--time-limit"):
        parse_duration(text)


def test_format_duration():
    assert [format_duration(s) for s in (1.25, 52, 285, 3720, None)] == ["1.2s", "52s", "4m45s", "1h02m", "-"]


def test_time_budget_on_a_fake_clock():
    now = [100.0]
    budget = TimeBudget(60, clock=lambda: now[0])
    assert budget.left() == 60 and budget.fits(60) and not budget.fits(60.5)
    now[0] += 45
    assert budget.elapsed() == 45 and budget.left() == 15 and budget.fits(15) and not budget.fits(16)
    now[0] += 20
    assert budget.left() == 0 and budget.expired()
    with pytest.raises(ValueError):
        TimeBudget(0)


# --- the cost model ---------------------------------------------------------------------------------------

RATES = {"cpu": DeviceRates({"float32": 100.0, "float64": 50.0}, mem_gbps=10.0, pinned_gbps=10.0,
                            pageable_gbps=10.0, flush_bytes=64e6),
         "cuda": DeviceRates({"float32": 20000.0, "float64": 10000.0, "bfloat16": 100000.0}, mem_gbps=2000.0,
                             pinned_gbps=25.0, pageable_gbps=10.0, flush_bytes=100e6)}


def mm(size, backend="numpy", device="cpu", dtype="float32", **extra):
    return CaseSpec.make("matmul", backend, device, dtype, {"m": size, "n": size, "k": size, **extra}, suite="t")


def saxpy(n, backend="numpy", device="cpu", cache="cold"):
    return CaseSpec.make("saxpy", backend, device, "float32", {"n": n, "a": 2.0, "cache": cache}, suite="t")


def model(settings=HarnessSettings(), **kw) -> CostModel:
    return CostModel(settings, {"gpus": [{"name": "some GPU"}], "cpu": {"logical_cores": 2}}, rates=RATES, **kw)


def test_a_call_is_its_work_at_the_device_rate():
    cost = model()
    assert cost.call_s(mm(1000)) == pytest.approx(2e9 / 100e9)          # 2·n³ FLOPs at 100 GFLOP/s
    assert cost.call_s(mm(1000, dtype="float64")) == pytest.approx(2e9 / 50e9)
    assert cost.call_s(mm(1000, "torch", "cuda", "bfloat16")) == pytest.approx(2e9 / 100000e9)
    assert cost.call_s(saxpy(10**8)) == pytest.approx(12e8 / 10e9)     # 3 × 4 bytes × n at 10 GB/s
    assert cost.call_s(mm(2)) == pytest.approx(2e-6)                    # never below the backend's dispatch
    naive = CaseSpec.make("matmul", "cupy", "cuda", "float32", {"m": 4096, "n": 4096, "k": 4096}, "naive", "t")
    assert cost.call_s(naive) > 10 * cost.call_s(mm(4096, "cupy", "cuda"))  # a hand-written kernel is slower


def test_a_case_is_setup_plus_the_harness():
    s = HarnessSettings()
    cost = model(s)
    small, large = cost.case_s(mm(64)), cost.case_s(mm(2048))
    # A tiny CPU case: warm-up, calibration, and the whole sampling budget (a CPU seldom meets the target early).
    assert s.warmup_s + s.budget_s < small < s.warmup_s + s.budget_s + 1.0
    assert large > small  # the float64 reference and a call of 0.17 s a sample
    # An accelerator usually meets its target early: less of the budget.
    assert cost.case_s(mm(64, "torch", "cuda")) < small
    # The lecture's naive ways are ten calls, no harness.
    naive = mm(2048, timing="host_sync")
    assert cost.case_s(naive) < large and cost.case_s(naive) > 10 * cost.call_s(naive)
    # --quick settings shrink everything.
    assert model(QUICK).case_s(mm(64)) < small / 3


def test_no_gpu_means_cuda_cases_are_skipped_at_once():
    cost = CostModel(HarnessSettings(), {"gpus": []}, rates=RATES)
    assert cost.absent(mm(4096, "torch", "cuda")) and cost.case_s(mm(4096, "torch", "cuda")) < 0.1
    assert not cost.absent(mm(64)) and cost.case_s(mm(64)) > 1
    # A case that ran on CUDA after all (nvidia-smi may be missing where the GPU is not): estimated as usual.
    spec = mm(4096, "torch", "cuda")
    cost.observe(spec, 1.0, CaseResult(spec, "ok", samples=(1e-3,) * 7, number=1, clock="fake", flops=2.0 * 4096**3))
    assert not cost.absent(mm(8192, "torch", "cuda")) and cost.case_s(mm(8192, "torch", "cuda")) > 0.5


def test_the_model_learns_rates_factors_and_startups():
    cost = model()
    spec, bigger = mm(512), mm(1024)
    before = cost.call_s(bigger)
    # The run measured 10 GFLOP/s for this backend, device, workload and dtype: ten times slower than the prior.
    samples = (2 * 512 ** 3 / 10e9,) * 7
    result = CaseResult(spec, "ok", samples=samples, number=1, clock="fake", flops=2.0 * 512 ** 3)
    estimate = cost.raw_case_s(spec)
    cost.observe(spec, 2 * estimate, result)
    assert cost.call_s(bigger) == pytest.approx(10 * before)
    # The case took twice its estimate: the factor moves toward 2 (the model itself counts as one observation).
    assert cost.factor(bigger) == pytest.approx(2 ** 0.5)
    assert cost.factor(mm(64, "torch")) == pytest.approx(2 ** 0.5)  # no torch case yet: every case's ratios
    cost.observe(spec, 1000 * estimate, result)
    assert cost.factor(bigger) <= 5.0  # bounded
    # A skip teaches nothing; a startup is learned per backend.
    n = len(cost.learned.ratios[("numpy", "cpu")])
    cost.observe(spec, 5.0, CaseResult(spec, "skipped", error="x"))
    assert len(cost.learned.ratios[("numpy", "cpu")]) == n
    assert cost.startup_s("torch") == 3.0
    cost.observe_startup("torch", 7.5)
    assert cost.startup_s("torch") == 7.5
    # A backend whose probe says it cannot run: its cases are skipped at once.
    assert cost.case_s(mm(64, "jax")) > 1
    cost.observe_startup("jax", 2.0, available=False)
    assert cost.absent(mm(64, "jax")) and cost.case_s(mm(64, "jax")) < 0.1


def test_measured_ceilings_replace_the_priors():
    ceilings = [{"device": "cuda", "kind": "peak_flops", "dtype": "bfloat16", "value": 700000.0},
                {"device": "cuda", "kind": "mem_bw", "dtype": "", "value": 3000.0}]
    cost = CostModel(HarnessSettings(), {"gpus": [{"name": "NVIDIA H100 80GB HBM3"}]}, ceilings=ceilings)
    assert cost.rates("cuda").gflops["bfloat16"] == 700000.0 and cost.rates("cuda").mem_gbps == 3000.0
    # An H100 named by nvidia-smi: its datasheet (at the share cuBLAS reaches) for what was not measured.
    assert cost.rates("cuda").gflops["float64"] == pytest.approx(34 * 1000 * 0.7)


# --- the order of a run --------------------------------------------------------------------------------------


def test_one_telling_size_per_sweep_first_then_the_sweeps():
    specs = [mm(s, b) for b in ("numpy", "torch") for s in (256, 1024, 4096)]
    specs += [mm(s, "torch", "cuda", "bfloat16") for s in (1024, 8192)]
    specs += [saxpy(n) for n in (2**16, 2**26)] + [saxpy(2**16, cache="hot")]
    telling, rest = telling_tiers(specs)
    assert telling == [mm(4096, "numpy"), mm(4096, "torch"), mm(8192, "torch", "cuda", "bfloat16"), saxpy(2**26),
                       saxpy(2**16, cache="hot")]
    assert set(rest) == set(specs) - set(telling)
    assert sweep_key(mm(256)) == sweep_key(mm(4096)) != sweep_key(mm(256, dtype="float64"))
    order = run_order([telling, rest, telling])
    # Each tier grouped by backend (a framework started once per tier), every case once.
    assert order == [mm(4096), saxpy(2**26), saxpy(2**16, cache="hot"),
                     mm(4096, "torch"), mm(8192, "torch", "cuda", "bfloat16"),
                     mm(256), mm(1024), saxpy(2**16),
                     mm(256, "torch"), mm(1024, "torch"), mm(1024, "torch", "cuda", "bfloat16")]


def test_calibration_measures_every_ceiling_once_first():
    from gpubench.calibrate import ceiling_tiers, plan

    specs = plan(("numpy", "torch", "jax"), ("cpu",), quick=True)
    first, rest = ceiling_tiers(specs)
    # One case per ceiling, by the preferred backend (torch), the other backends' after.
    assert {s.backend for s in first} == {"torch"} and len(first) == 3  # float32, float64 and memory
    assert {s.backend for s in rest} == {"numpy", "jax"}


# --- the runner under a time limit ----------------------------------------------------------------------------


class ScriptedCost(CostModel):
    """Fixed estimates per case size; ``took`` is how long each case 'really' takes on the fake clock."""

    def __init__(self, estimates):
        super().__init__(QUICK, {})
        self.estimates = estimates

    def case_s(self, spec):
        return self.estimates[spec.param_dict["m"]]

    def raw_case_s(self, spec):
        return self.case_s(spec)

    def startup_s(self, backend):
        return 0.0


def fake(m, variant="good"):
    return CaseSpec.make("matmul", "fake", "cpu", "float64", {"m": m, "n": m, "k": m}, variant, "t")


def test_never_starts_a_case_that_cannot_finish_and_keeps_every_finished_one(fake_plugin, tmp_path):
    now = [0.0]
    took = {8: 2.0, 16: 50.0, 4: 1.0, 12: 3.0}
    cost = ScriptedCost({8: 2.0, 16: 50.0, 4: 1.0, 12: 3.0})
    lines = []

    def progress(done, total, spec, result):
        if result is not None:
            now[0] += took[spec.param_dict["m"]]  # the case's duration on the fake clock
            lines.append((done, total, spec.param_dict["m"], runner.remaining_s()))

    specs = [fake(8), fake(16), fake(4), fake(12), fake(8, "wrong")]
    with ResultStore(tmp_path / "s.sqlite") as store:
        runner = Runner(store, QUICK, timeout_s=30, progress=progress, time_limit_s=6.0, cost=cost,
                        clock=lambda: now[0], started=0.0)
        run_id, status = runner.run(specs, suite="t")
        run = store.run(run_id)
        results = store.results(run_id)
    # 8 (2 s) runs; 16 (50 s) does not fit; 4 (1 s) runs; 12 (3 s) fits exactly (3 s left); wrong-8 no longer fits.
    assert [r.spec.param_dict["m"] for r in results] == [8, 4, 12] and all(r.status == "ok" for r in results)
    assert [s.param_dict["m"] for s in runner.not_started] == [16, 8]
    assert status == run.status == "time_limited"
    assert run.reason == "time limit 6.0s: 3 of 5 cases ran, 2 not started (their estimates did not fit in the " \
                         "time left)"
    assert run.settings["time_limit_s"] == 6.0 and run.settings["planned_cases"] == 5
    assert run.settings["source"] == "run" and run.settings["schema"] == 1
    # Time left: what is still to come and fits (the 16 never does), 0 once nothing fits.
    assert [ln[3] for ln in lines] == [pytest.approx(4.0), pytest.approx(3.0), 0.0]


def test_a_case_that_does_not_fit_but_would_be_skipped_is_recorded_skipped(fake_plugin, tmp_path):
    """Left out only when it would have run: a case its backend skips here (unsupported, too large for the memory
    free) costs no time, so it is recorded as skipped, with the reason, and the run is complete."""
    cost = ScriptedCost({8: 1.0, 99: 500.0})
    with ResultStore(tmp_path / "s.sqlite") as store:
        runner = Runner(store, QUICK, timeout_s=30, time_limit_s=60.0, cost=cost)
        run_id, status = runner.run([fake(8), fake(99)], suite="t")
        results = store.results(run_id)
    assert [(r.spec.param_dict["m"], r.status) for r in results] == [(8, "ok"), (99, "skipped")]
    assert results[1].error == "fake: m = 99 is a size this device cannot run"
    assert status == "complete" and runner.not_started == []


def test_a_run_whose_cases_all_fit_is_complete(fake_plugin, tmp_path):
    with ResultStore(tmp_path / "s.sqlite") as store:
        runner = Runner(store, QUICK, timeout_s=30, time_limit_s=600.0, cost=ScriptedCost({8: 1.0}))
        run_id, status = runner.run([fake(8)], suite="t")
        assert status == "complete" and store.run(run_id).reason == "" and store.count_results(run_id) == 1


def test_a_case_running_at_the_limit_is_stopped_and_not_kept(fake_plugin, tmp_path):
    cost = ScriptedCost({8: 0.5, 9: 0.5})
    with ResultStore(tmp_path / "s.sqlite") as store:
        runner = Runner(store, QUICK, timeout_s=60, time_limit_s=4.0, cost=cost)
        run_id, status = runner.run([fake(8), fake(9, "hang"), fake(8, "wrong")], suite="t")
        run = store.run(run_id)
        results = store.results(run_id)
    assert [r.spec.variant for r in results] == ["good"]  # the hang is not a timeout of the case: it was cut
    assert status == "time_limited" and runner.cut == fake(9, "hang")
    assert run.reason.endswith("stopped at the limit during matmul fake[hang]:cpu float64 k=9 m=9 n=9 (not kept)")
    assert "2 not started" not in run.reason and "1 not started" in run.reason


def test_cpu_cases_above_their_call_limit_are_skipped_with_the_reason(fake_plugin, tmp_path):
    class Slow(ScriptedCost):
        def call_s(self, spec):
            return 2.5 if spec.param_dict["m"] == 16 else 0.01

    cost = Slow({8: 1.0, 16: 1.0})
    with ResultStore(tmp_path / "s.sqlite") as store:
        runner = Runner(store, QUICK, timeout_s=30, cost=cost, cpu_limits={fake(8): 1.0, fake(16): 1.0})
        run_id, _ = runner.run([fake(8), fake(16)], suite="t")
        small, big = store.results(run_id)
    assert small.status == "ok"
    assert big.status == "skipped" and "max_cpu_call_s" in big.error and big.metrics["estimated_call_s"] == 2.5


# --- the command line --------------------------------------------------------------------------------------------


def suite_file(tmp_path, extra=""):
    path = tmp_path / "tiny.toml"
    path.write_text(f'''name = "tiny"
{extra}
[[cases]]
workload = "saxpy"
backends = ["numpy"]
dtypes = ["float32"]
params = {{ n = [1024, 4096, 65536] }}
''')
    return str(path)


@pytest.mark.parametrize("bad", ["0", "abc", "-1m", "5x"])
def test_bad_time_limit_is_a_usage_error(bad, store_path, cli, tmp_path):
    code, _, err = cli("run", "--suite", suite_file(tmp_path), f"--time-limit={bad}")
    assert code == 2 and "--time-limit must be" in err and not store_path.exists()
    code, _, err = cli("calibrate", "--quick", f"--time-limit={bad}")
    assert code == 2 and not store_path.exists()


def test_a_suite_time_limit_is_checked(cli, store_path, tmp_path):
    code, _, err = cli("run", "--suite", suite_file(tmp_path, 'time_limit = "soon"'), "--dry-run")
    assert code == 2 and "tiny.toml: 'time_limit' must be a duration" in err


def test_dry_run_prints_estimates_in_run_order(store_path, tmp_path):
    proc = run_gpubench("run", "--suite", suite_file(tmp_path), "--quick", "--dry-run", "--time-limit", "8m")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    # The telling size first, then the sweep; each with its estimate.
    assert lines[0].startswith("saxpy numpy:cpu float32 a=2.0 cache=cold n=65536  ~")
    assert all("  ~" in ln and ln.endswith("s") for ln in lines) and len(lines) == 3
    assert "3 cases, about" in proc.stderr and "time limit 8m00s: about 3 of 3 would run" in proc.stderr
    assert not store_path.exists()


def test_a_time_limited_run_says_how_many_ran(store_path, tmp_path):
    proc = run_gpubench("run", "--suite", suite_file(tmp_path), "--quick", "--time-limit", "2s")
    assert proc.returncode == 0, proc.stderr
    with ResultStore(store_path, readonly=True) as store:
        run = store.run()
        ran = store.count_results(run.id)
    assert run.status == "time_limited" and ran < 3
    assert f"time limit 2.0s: {ran} of 3 cases ran" in run.reason and run.reason in proc.stderr
    assert "time_limited" in proc.stdout.splitlines()[0]
    runs = json.loads(run_gpubench("runs", "--json").stdout)
    assert runs[-1]["status"] == "time_limited" and runs[-1]["reason"] == run.reason


def test_progress_shows_elapsed_and_time_left():
    import io

    from gpubench.progress import Progress

    now = [10.0]
    stream = io.StringIO()
    p = Progress(stream, clock=lambda: now[0], start=0.0)
    p.eta = lambda: 222.0
    s = mm(64)
    p.update(1, 3, s, CaseResult(s, "ok", samples=(0.001,), number=1, clock="fake"))
    now[0] = 75.0
    p.eta = lambda: None
    p.update(2, 3, s, CaseResult(s, "ok", samples=(0.001,), number=1, clock="fake"))
    first, second = stream.getvalue().splitlines()
    assert first.endswith("1 ms  (10s, ~3m42s left)") and second.endswith("(1m15s)")

"""Collectives on torch.distributed: nccl-tests' formulas, exact checks, real gloo ranks, and no rank left behind.

The gloo tests start real rank processes (two, on this CPU). Every test that starts ranks watches
the process tree while it runs and checks afterwards that each process it saw is gone (a rank
re-parented to init after its parent died would not show as a child any more).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from ranks import needs_gloo, torchrun

from gpubench.case import run_case
from gpubench.errors import Unavailable, UsageError
from gpubench.harness import HarnessSettings
from gpubench.ops import DeviceInfo
from gpubench.records import CaseSpec
from gpubench.workloads import collective as wc
from gpubench.workloads import get_workload

TINY = HarnessSettings(warmup_s=0.0, warmup_min_calls=1, min_sample_s=0.001, min_samples=3, max_samples=5,
                       target_rel_ci=1.0, budget_s=0.05)
ROOT = Path(__file__).resolve().parents[1]





# --- formulas and exactness (no processes) --------------------------------------------------------
@pytest.mark.parametrize("name, ranks, factor", [
    ("all_reduce", 2, 1.0), ("all_reduce", 8, 1.75), ("all_gather", 2, 0.5), ("all_gather", 8, 0.875),
    ("broadcast", 2, 1.0), ("broadcast", 8, 1.0)])
def test_bus_factor_and_bytes_are_nccl_tests(name, ranks, factor):
    assert wc.bus_factor(name, ranks) == factor
    wl = get_workload(name)
    params = wl.normalize_params({"bytes": 1 << 20, "ranks": ranks})
    assert wl.bytes_moved(params, "float32") == (1 << 20) * factor
    assert wl.unit == "gbps" and wl.self_timed


def test_params_defaults_and_bad_input():
    wl = get_workload("all_reduce")
    assert wl.normalize_params({"bytes": 4096}) == {"bytes": 4096, "ranks": 2}
    assert wl.mode_tags({"bytes": 4096, "ranks": 2}) == ["ranks=2"]
    assert wl.describe({"bytes": 1 << 20, "ranks": 2}) == "1 MiB"
    with pytest.raises(UsageError, match="missing parameter bytes"):
        wl.normalize_params({"ranks": 2})
    with pytest.raises(UsageError, match="ranks must be >= 2"):
        wl.normalize_params({"bytes": 4096, "ranks": 1})
    with pytest.raises(UsageError, match="does not split over nodes"):
        wl.normalize_params({"bytes": 4096, "ranks": 3, "nodes": 2})
    with pytest.raises(UsageError, match="does not split into 3 ranks"):
        get_workload("all_gather").memory_bytes({"bytes": 4096, "ranks": 3}, "float32")
    with pytest.raises(UsageError, match="4-byte elements"):
        wl.memory_bytes({"bytes": 4098, "ranks": 2}, "float32")


def test_suite_expands_to_plain_specs():
    from gpubench.spec import Filters, expand, load_suite

    specs = expand(load_suite("allreduce"), Filters(devices=("cpu",)), quick=True)
    assert {s.workload for s in specs} == {"all_reduce", "all_gather", "broadcast"}
    for s in specs:
        assert s.backend == "torch" and s.device == "cpu"
        assert set(s.param_dict) == {"bytes", "ranks"} and s.param_dict["ranks"] == 2
    full = expand(load_suite("allreduce"), Filters(devices=("cpu",)), check_memory=False)
    sizes = sorted({s.param_dict["bytes"] for s in full})
    assert sizes[0] == 4096 and sizes[-1] == 1 << 30


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bfloat16"])
@pytest.mark.parametrize("ranks", [2, 8, 64])
def test_values_sum_exactly_in_every_dtype(dtype, ranks):
    bound = wc.value_bound(dtype, ranks)
    assert 1 <= bound <= wc.MAX_VALUE and ranks * bound <= wc.EXACT_INTEGER[dtype]
    idx = np.arange(100_000, dtype=np.int64)
    vals = [wc.rank_values(idx, r, 12345, bound) for r in range(ranks)]
    assert all(v.min() == -bound and v.max() == bound for v in vals)  # the whole range, not a constant
    assert not np.array_equal(vals[0], vals[1])
    total = np.sum(vals, axis=0)
    torch = pytest.importorskip("torch")
    t = torch.tensor(np.stack(vals), dtype=getattr(torch, dtype))
    # Summed in the dtype itself, in two different orders: every partial sum is an exact integer.
    assert np.array_equal(t.sum(0, dtype=t.dtype).double().numpy(), total)
    assert np.array_equal(t.flip(0).cumsum(0, dtype=t.dtype)[-1].double().numpy(), total)


def test_too_many_ranks_for_the_dtype_is_a_skip():
    wl = get_workload("all_reduce")
    params = wl.normalize_params({"bytes": 4096, "ranks": 512})
    assert wc.value_bound("bfloat16", 512) == 0
    with pytest.raises(Unavailable, match="cannot hold the sum over 512 ranks exactly"):
        wl.make_inputs(params, "bfloat16", np.random.default_rng(0))


def test_rank_data_is_periodic_and_differs_per_rank():
    tables = [wc.rank_table(7, r, 8) for r in range(4)]
    assert all(t.shape == (wc.PERIOD,) for t in tables)
    assert all(not np.array_equal(tables[0], t) for t in tables[1:])
    assert np.array_equal(wc.rank_table(7, 2, 8), tables[2])  # the same on every rank and in the reference
    idx = np.array([0, 1, wc.PERIOD - 1, wc.PERIOD, wc.PERIOD + 1, 3 * wc.PERIOD + 5])
    assert np.array_equal(wc.rank_values(idx, 2, 7, 8), tables[2][idx % wc.PERIOD])


def test_torch_fill_and_check_follow_the_tables(monkeypatch):
    torch = pytest.importorskip("torch")
    from gpubench.backends.torch_backend import collective_rank as cr

    monkeypatch.setattr(cr, "CHUNK", 3 * 1000 + 17)  # blocks of whole periods, a short last block
    table = wc.rank_table(3, 1, 8)[:1000]
    buf = torch.empty(10_500, dtype=torch.bfloat16)
    cr.fill_periodic(torch, buf, torch.from_numpy(table).to(torch.bfloat16))
    assert np.array_equal(buf.double().numpy(), table[np.arange(10_500) % 1000])
    t = torch.from_numpy(table).to(torch.bfloat16)
    assert cr.count_mismatches(torch, buf, t) == 0
    buf[9_999] += 1
    buf[17] = float("nan")
    assert cr.count_mismatches(torch, buf, t) == 2


@pytest.mark.parametrize("name", wc.COLLECTIVES)
def test_reference_checksum_is_the_float64_output(name, monkeypatch):
    monkeypatch.setattr(wc, "PERIOD", 101)  # data and weights repeat jointly every 707 elements, 8 times and more
    wl = get_workload(name)
    params = wl.normalize_params({"bytes": 4 * 3 * 2000, "ranks": 3})
    inputs = wl.make_inputs(params, "float32", np.random.default_rng(3))
    seed, bound = int(inputs["seed"][0]), int(inputs["bound"][0])
    n = params["bytes"] // 4
    if name == "all_reduce":
        out = sum(wc.rank_values(np.arange(n), r, seed, bound).astype(np.float64) for r in range(3))
    elif name == "all_gather":
        out = np.concatenate([wc.rank_values(np.arange(n // 3), r, seed, bound) for r in range(3)]).astype(np.float64)
    else:
        out = wc.rank_values(np.arange(n), 0, seed, bound).astype(np.float64)
    ref = wl.reference(inputs, params)
    assert ref.shape == (3, 2)
    assert np.all(ref[:, 0] == 0)
    assert np.all(ref[:, 1] == float(np.dot(out, np.arange(n) % 7 + 1)))


def test_check_is_exact():
    wl = get_workload("all_reduce")
    params = wl.normalize_params({"bytes": 4096, "ranks": 2})
    ref = np.array([[0.0, 123.0], [0.0, 123.0]])
    assert wl.check(ref.copy(), ref, params, "float32") == (0.0, 0.0)
    one_wrong = np.array([[0.0, 123.0], [1.0, 124.0]])
    rel, tol = wl.check(one_wrong, ref, params, "float32")
    assert tol == 0.0 and rel == 1 / 2048
    checksum_only = np.array([[0.0, 123.0], [0.0, 122.0]])  # the rank's own check missed it: still wrong
    assert wl.check(checksum_only, ref, params, "float32")[0] == 1.0
    assert wl.check(ref[:1], ref, params, "float32")[0] == float("inf")


class FakeSession(wc.CollectiveSession):
    """A session with known samples (timing logic only: no processes)."""

    clock = "perf_counter"

    def __init__(self, samples):
        self.samples = samples
        self.info = {"comm_backend": "fake"}
        self.closed = False

    def verify(self):
        return np.zeros((2, 2))

    def time(self, settings):
        return wc.RankTiming(tuple(self.samples), (), 3, True, 0.5)

    def close(self):
        self.closed = True


@pytest.mark.parametrize("name", wc.COLLECTIVES)
def test_measurement_reports_algbw_busbw_and_latency(name):
    wl = get_workload(name)
    params = wl.normalize_params({"bytes": 1 << 20, "ranks": 4})
    op = wl.bind(FakeSession([2e-3, 1e-3, 1e-3, 3e-3, 1e-3]), params, "float32")
    op.call()
    m = wl.measurement(op, TINY)
    assert m.samples == (2e-3, 1e-3, 1e-3, 3e-3, 1e-3) and m.number == 1 and m.warmup_calls == 3 and m.target_met
    algbw = (1 << 20) / 1e-3 / 1e9
    assert op.metrics["time_us"] == pytest.approx(1000.0)
    assert op.metrics["algbw_gbps"] == pytest.approx(algbw)
    assert op.metrics["busbw_gbps"] == pytest.approx(algbw * wc.bus_factor(name, 4))
    # The record's GB/s (bus bytes over the same median) is busbw.
    assert wl.bytes_moved(params, "float32") / 1e-3 / 1e9 == pytest.approx(op.metrics["busbw_gbps"])
    op.close()
    assert op.session.closed


# --- NCCL skips (no GPU here: the device count is a parameter) ------------------------------------
def test_nccl_skip_reason():
    from gpubench.backends.torch_backend.collective import nccl_skip_reason

    one_gpu = nccl_skip_reason(2, 1, True)
    assert "needs ≥ 2 CUDA devices" in one_gpu and "found 1" in one_gpu
    assert nccl_skip_reason(2, 2, True) is None
    assert nccl_skip_reason(8, 8, True) is None
    assert "needs ≥ 8 CUDA devices" in nccl_skip_reason(8, 2, True)
    assert "needs ≥ 2 CUDA devices" in nccl_skip_reason(2, 0, True)
    assert "needs ≥ 2 CUDA devices" in nccl_skip_reason(2, 2, True, first_device=1)
    assert nccl_skip_reason(2, 8, False) == "torch: this torch build has no NCCL backend"


def test_one_gpu_skips_nccl_through_the_op_module(monkeypatch):
    pytest.importorskip("torch")
    from gpubench.backends import get_backend
    from gpubench.backends.torch_backend import collective as tc

    backend = get_backend("torch")
    backend.load()
    calls = []
    monkeypatch.setattr(backend.torch.cuda, "device_count", lambda: calls.append("device_count") or 1)
    monkeypatch.setattr(backend.torch.distributed, "is_nccl_available", lambda: calls.append("nccl") or True)
    spec = CaseSpec.make("all_reduce", "torch", "cuda", "float32", {"bytes": 4096, "ranks": 2})
    gpu = DeviceInfo("cuda:0", "NVIDIA H100 80GB HBM3", "cuda", memory_bytes=80 << 30)
    reason = tc.unsupported(backend, spec, spec.param_dict, gpu)
    assert reason == "torch: NCCL with 2 ranks needs ≥ 2 CUDA devices (one rank per device), found 1"
    assert sorted(calls) == ["device_count", "nccl"]
    two_nodes = tc.unsupported(backend, spec, {**spec.param_dict, "nodes": 2}, gpu)
    assert "torchrun" in two_nodes


# --- real gloo ranks ------------------------------------------------------------------------------
@needs_gloo
@pytest.mark.slow
def test_gloo_bfloat16_all_reduce_is_exact(watch):
    r = run_case(CaseSpec.make("all_reduce", "torch", "cpu", "bfloat16", {"bytes": 8192, "ranks": 2}), TINY)
    assert r.status == "ok", r.error
    assert r.rel_error == 0.0 and r.tolerance == 0.0
    assert r.clock == "perf_counter" and 3 <= len(r.samples) <= 5
    assert r.metrics["comm_backend"] == "gloo" and r.metrics["ranks"] == 2
    assert r.metrics["busbw_gbps"] == pytest.approx(r.gbps)
    assert len(watch.ranks_seen()) == 2
    assert watch.survivors() == []


@needs_gloo
@pytest.mark.slow
def test_wrong_collective_is_incorrect(watch, monkeypatch):
    from gpubench.backends.torch_backend.collective_rank import CORRUPT_ENV

    monkeypatch.setenv(CORRUPT_ENV, "1")
    r = run_case(CaseSpec.make("all_gather", "torch", "cpu", "float32", {"bytes": 8192, "ranks": 2}), TINY)
    assert r.status == "incorrect"
    assert r.rel_error == pytest.approx(1 / 4096) and r.tolerance == 0.0
    assert watch.survivors() == []


@needs_gloo
@pytest.mark.slow
def test_hung_rank_is_a_timeout_and_every_rank_is_killed(watch, monkeypatch):
    from gpubench.backends.torch_backend.collective_rank import HANG_ENV

    monkeypatch.setenv(HANG_ENV, "1")
    t0 = time.monotonic()
    r = run_case(CaseSpec.make("broadcast", "torch", "cpu", "float32",
                               {"bytes": 4096, "ranks": 2, "timeout_s": 3.0}), TINY)
    assert r.status == "timeout", r.error
    assert "gave no answer within 3 s" in r.error and "all 2 ranks killed" in r.error
    assert time.monotonic() - t0 < 150
    assert len(watch.ranks_seen()) == 2
    assert watch.survivors(wait_s=0.0) == []  # killed and reaped before run_case returned


@needs_gloo
@pytest.mark.slow
def test_a_rank_hung_before_the_rendezvous_is_a_timeout_not_its_peers_store_error(watch, monkeypatch):
    """The parent's step limit alone decides: the peer waiting in the rendezvous must not report its own
    (shorter) store timeout first, as it did when the ranks' group timeout was the step limit itself."""
    import gpubench.backends.torch_backend.collective as tc
    from gpubench.backends.torch_backend.collective_rank import HANG_LAUNCH_ENV

    monkeypatch.setenv(HANG_LAUNCH_ENV, "1")
    monkeypatch.setattr(tc, "LAUNCH_ALLOWANCE_S", 25.0)  # the launch's limit: 3 + 25 s
    r = run_case(CaseSpec.make("all_reduce", "torch", "cpu", "float32",
                               {"bytes": 4096, "ranks": 2, "timeout_s": 3.0}), TINY)
    assert r.status == "timeout", r.error
    assert "launch: rank" in r.error and "gave no answer within 28 s" in r.error
    assert watch.survivors(wait_s=0.0) == []


def test_group_timeouts_are_case_timeouts_inside_a_torchrun_job():
    from gpubench.backends.torch_backend.collective import _group_timeout_is_case_timeout
    from gpubench.backends.torch_backend.collective_rank import is_comm_timeout
    from gpubench.errors import CaseTimeout

    gloo = RuntimeError("[gloo/transport/tcp/unbound_buffer.cc:78] Timed out waiting 2000ms for recv operation")
    nccl = RuntimeError("Watchdog caught collective operation timeout: WorkNCCL(SeqNum=1) ran for 600000 "
                        "milliseconds before timing out.")
    assert is_comm_timeout(gloo) and is_comm_timeout(nccl)
    assert not is_comm_timeout(RuntimeError("Connection closed by peer"))
    with pytest.raises(CaseTimeout, match="verification: .*Timed out waiting"):
        with _group_timeout_is_case_timeout("verification"):
            raise gloo
    with pytest.raises(RuntimeError, match="closed by peer"):
        with _group_timeout_is_case_timeout("timing"):
            raise RuntimeError("Connection closed by peer")


def _wait_for_ranks(worker_pid: int, n: int, limit_s: float = 120.0) -> list[int]:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        ranks = [p.pid for p in psutil.Process(worker_pid).children()
                 if "multiprocessing.spawn" in " ".join(p.cmdline())]
        if len(ranks) >= n:
            return ranks
        time.sleep(0.2)
    raise AssertionError(f"the worker started no {n} ranks within {limit_s} s")


@needs_gloo
@pytest.mark.slow
def test_sigkill_of_the_worker_takes_every_rank_along(watch, monkeypatch):
    """Only the worker is killed (not its process group): the ranks die by PR_SET_PDEATHSIG alone."""
    from dataclasses import asdict

    from gpubench.backends.torch_backend.collective_rank import HANG_ENV
    from gpubench.runner import Worker

    monkeypatch.setenv(HANG_ENV, "1")
    worker = Worker("torch")
    try:
        spec = CaseSpec.make("all_reduce", "torch", "cpu", "float32", {"bytes": 4096, "ranks": 2})
        payload = {"op": "case", "spec": spec.to_dict(), "settings": asdict(TINY)}
        worker.proc.stdin.write((json.dumps(payload) + "\n").encode())
        worker.proc.stdin.flush()
        ranks = _wait_for_ranks(worker.proc.pid, 2)
        # torch.multiprocessing starts no new session: the runner's killpg reaches the ranks too.
        assert {os.getpgid(pid) for pid in ranks} == {os.getpgid(worker.proc.pid)}
        time.sleep(1.0)  # the ranks are past their start-up: one sleeps, the other waits in gloo
        os.kill(worker.proc.pid, signal.SIGKILL)
        worker.proc.wait(timeout=10)
        gone = psutil.wait_procs([psutil.Process(pid) for pid in ranks if psutil.pid_exists(pid)], timeout=10)
        assert gone[1] == [], f"ranks alive after the worker's SIGKILL: {[p.pid for p in gone[1]]}"
        assert watch.survivors() == []
    finally:
        worker.kill()


@needs_gloo
@pytest.mark.slow
def test_runner_timeout_kills_the_ranks_with_the_worker(watch, monkeypatch, tmp_path):
    """The runner's own per-case timeout (shorter than the ranks' limit) kills the worker's group, ranks included."""
    from gpubench.backends.torch_backend.collective_rank import HANG_ENV
    from gpubench.runner import Runner
    from gpubench.store import ResultStore

    monkeypatch.setenv(HANG_ENV, "0")
    spec = CaseSpec.make("all_reduce", "torch", "cpu", "float32", {"bytes": 4096, "ranks": 2})
    with ResultStore(tmp_path / "s.sqlite") as store:
        run_id, status = Runner(store, TINY, timeout_s=40.0).run([spec], suite="t")
        (r,) = store.results(run_id)
    assert status == "complete"
    assert r.status == "timeout" and "worker killed" in r.error
    assert len(watch.ranks_seen()) == 2
    assert watch.survivors() == []


@needs_gloo
@pytest.mark.slow
def test_gpubench_run_allreduce_quick(watch, tmp_path):
    """The issue's check: ``gpubench run --suite allreduce --quick`` is ok with 2 gloo ranks, busbw in the export."""
    store = tmp_path / "s.sqlite"
    env = {**os.environ, "GPUBENCH_STORE": str(store)}
    run = subprocess.run([sys.executable, "-m", "gpubench", "run", "--suite", "allreduce", "--quick",
                          "--device", "cpu"], capture_output=True, text=True, env=env, timeout=900)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "6 ok" in run.stdout
    export = subprocess.run([sys.executable, "-m", "gpubench", "export", "--format", "json"],
                            capture_output=True, text=True, env=env, timeout=120)
    rows = json.loads(export.stdout)["results"]
    assert sorted((r["workload"], r["params"]["bytes"]) for r in rows) == sorted(
        (w, b) for w in wc.COLLECTIVES for b in (4096, 1 << 20))
    for r in rows:
        assert r["status"] == "ok" and r["rel_error"] == 0.0 and r["tolerance"] == 0.0
        m = r["metrics"]
        assert m["ranks"] == 2 and m["comm_backend"] == "gloo"
        assert m["busbw_gbps"] == pytest.approx(r["gbps"])
        assert m["busbw_gbps"] == pytest.approx(m["algbw_gbps"] * wc.bus_factor(r["workload"], 2))
        assert m["time_us"] == pytest.approx(r["median_s"] * 1e6)
    csv = subprocess.run([sys.executable, "-m", "gpubench", "export", "--format", "csv"],
                         capture_output=True, text=True, env=env, timeout=120).stdout
    assert "metric.busbw_gbps" in csv.splitlines()[0]
    assert len(watch.ranks_seen()) == 12  # two ranks per case, each case its own pair
    assert watch.survivors() == []


@needs_gloo
@pytest.mark.slow
def test_torchrun_entry_point_with_c10d_rendezvous(watch, tmp_path):
    """The multi-node command, on one node: torchrun's c10d rendezvous on localhost, 2 gloo ranks."""
    store = tmp_path / "s.sqlite"
    cmd = torchrun("gpubench-test", "-m", "gpubench.collective", "--device", "cpu", "--quick",
                   "--op", "all_reduce,all_gather", "--bytes", "4096", "--store", str(store))
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "busbw" in run.stdout and run.stdout.count(" ok") >= 2
    from gpubench.store import ResultStore

    with ResultStore(store, create=False) as s:
        run_info = s.run(None)
        results = s.results(run_info.id)
    assert run_info.environment["torchrun"]["world_size"] == 2
    # Recorded like every other run (gpubench.recorder): one settings schema, the launcher's own in "extra".
    assert run_info.settings["source"] == "collective" and run_info.settings["schema"] == 1
    assert run_info.settings["extra"] == {"world_size": 2, "nodes": 1} and run_info.settings["profile"] == "quick"
    assert [(r.spec.workload, r.status) for r in results] == [("all_reduce", "ok"), ("all_gather", "ok")]
    for r in results:
        assert r.spec.param_dict == {"bytes": 4096, "ranks": 2} and r.rel_error == 0.0
        assert r.metrics["launcher"].startswith("torchrun") and r.metrics["busbw_gbps"] == pytest.approx(r.gbps)
    assert len(watch.ranks_seen()) >= 2
    assert watch.survivors() == []


def test_entry_point_outside_torchrun_is_a_clear_error():
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR")}
    run = subprocess.run([sys.executable, "-m", "gpubench.collective", "--device", "cpu"], capture_output=True,
                         text=True, env=env, timeout=120)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1].startswith("gpubench.collective: error: run this under torchrun")

"""Data-parallel training on torch.distributed: the reference, the check, real gloo ranks, torchrun, scaling."""

from __future__ import annotations

import os
import subprocess

import numpy as np
import pytest
from ranks import needs_gloo, torchrun

from gpubench.case import run_case
from gpubench.errors import UsageError
from gpubench.harness import HarnessSettings
from gpubench.records import CaseSpec
from gpubench.workloads import ddp, get_workload

TINY = HarnessSettings(warmup_s=0.0, warmup_min_calls=1, min_sample_s=0.001, min_samples=3, max_samples=5,
                       target_rel_ci=1.0, budget_s=0.05)
CNN = {"model": "cnn", "global_batch": 32, "steps": 3}
RESNET = {"model": "resnet18", "global_batch": 8, "image_size": 64, "steps": 2}





def test_params_and_bad_input():
    w = get_workload("ddp_training")
    p = w.normalize_params({"model": "cnn"})
    assert p["ranks"] == 1 and "image_size" not in p
    assert "ranks=1" in w.describe(p)
    with pytest.raises(UsageError, match="does not split over ranks"):
        w.normalize_params({"global_batch": 10, "ranks": 4})
    with pytest.raises(UsageError, match="does not split over nodes"):
        w.normalize_params({"global_batch": 12, "ranks": 3, "nodes": 2})


def test_flops_count_resnet18_as_torchvision_does():
    # 1.814 G multiply-adds for one 224×224 picture with 1,000 classes (torchvision's published figure)
    from gpubench.workloads.nets import resnet18_forward_flops

    assert resnet18_forward_flops(224, 1000) / 2 == pytest.approx(1.814e9, rel=0.005)


def test_resnet18_is_torchvisions():
    torch = pytest.importorskip("torch")
    from gpubench.workloads import torch_nets as nets

    net = nets.build(torch, "resnet18", 1000)
    assert sum(p.numel() for p in net.parameters()) == 11_689_512  # torchvision resnet18's parameter count
    try:
        import torchvision
    except Exception as exc:  # noqa: BLE001 - PyPI's torchvision fails to import beside some torch builds
        pytest.skip(f"torchvision not importable here ({type(exc).__name__}): parameter count checked instead")
    theirs = torchvision.models.resnet18()
    assert [(k, tuple(v.shape)) for k, v in net.state_dict().items()] == \
        [(k, tuple(v.shape)) for k, v in theirs.state_dict().items()]


def test_reference_of_a_model_without_batch_norm_is_the_plain_global_batch_run():
    """For the CNN, accumulating over the ranks' shares is one pass over the global batch: ranks do not matter."""
    torch = pytest.importorskip("torch")
    one = ddp.single_process_losses(torch, {**CNN, "ranks": 1, "lr": 0.01, "seed": 0})
    four = ddp.single_process_losses(torch, {**CNN, "ranks": 4, "lr": 0.01, "seed": 0})
    assert np.allclose(one, four, rtol=1e-12)
    assert one[-1] < one[0]  # it trains


def test_check_needs_agreeing_ranks_and_the_reference_loss():
    w = get_workload("ddp_training")
    p = w.normalize_params({**CNN, "ranks": 2})
    ref = np.array([2.3, 2.2, 2.1])
    assert w.check(np.array([ref, ref]), ref, p, "float32") == (0.0, ddp.LOSS_TOLERANCE["cnn"])
    assert w.check(np.array([ref, ref * 1.001]), ref, p, "float32")[0] == np.inf
    assert w.check(np.array([ref * 1.001] * 2), ref, p, "float32")[0] == pytest.approx(1e-3)
    assert w.check(np.array([[np.nan] * 3] * 2), ref, p, "float32")[0] == np.inf


def test_scaling_efficiency_is_against_the_one_rank_case_of_the_same_problem_and_run():
    def row(ranks, median, run_id=1, batch=64):
        return {"run_id": run_id, "workload": "ddp_training", "backend": "torch", "device": "cpu",
                "dtype": "float32", "status": "ok", "median_s": median,
                "params": {"model": "cnn", "global_batch": batch, "ranks": ranks}}

    rows = [row(1, 1.0), row(2, 0.625), row(4, 0.5), row(2, 0.5, run_id=2), row(2, 0.25, batch=128)]
    assert ddp.scaling_efficiency(rows) == [1.0, 0.8, 0.5, None, None]


# --- real ranks ---------------------------------------------------------------------------------------
@needs_gloo
@pytest.mark.slow
@pytest.mark.parametrize("ranks", [1, 2])
def test_gloo_ranks_train_the_single_process_model(ranks, watch):
    r = run_case(CaseSpec.make("ddp_training", "torch", "cpu", "float32", {**CNN, "ranks": ranks}), TINY)
    assert r.status == "ok", r.error
    assert r.rel_error <= 1e-5  # float32 against float64 after three steps: far inside the 1e-4 tolerance
    m = r.metrics
    assert m["ranks"] == ranks and m["comm_backend"] == "gloo" and m["per_rank_batch"] == 32 // ranks
    assert m["samples_per_s"] == pytest.approx(32 / m["step_s"]) and len(m["verified_losses"]) == 3
    assert len(watch.ranks_seen()) == ranks
    assert watch.survivors() == []


@needs_gloo
@pytest.mark.slow
def test_resnet18_with_per_rank_batch_norm_matches_its_reference(watch):
    r = run_case(CaseSpec.make("ddp_training", "torch", "cpu", "float32", {**RESNET, "ranks": 2}), TINY)
    assert r.status == "ok", r.error
    assert watch.survivors() == []


@needs_gloo
@pytest.mark.slow
def test_ranks_that_do_not_average_their_gradients_are_incorrect(watch, monkeypatch):
    from gpubench.backends.torch_backend.ddp_rank import NO_SYNC_ENV

    monkeypatch.setenv(NO_SYNC_ENV, "1")
    r = run_case(CaseSpec.make("ddp_training", "torch", "cpu", "float32", {**CNN, "ranks": 2, "lr": 0.1}), TINY)
    assert r.status == "incorrect", r.error
    assert watch.survivors() == []


def test_nccl_needs_a_gpu_per_rank(monkeypatch):
    torch = pytest.importorskip("torch")
    from gpubench.backends import get_backend
    from gpubench.backends.torch_backend import ddp_training
    from gpubench.ops import DeviceInfo

    backend = get_backend("torch")
    backend.load()
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.distributed, "is_nccl_available", lambda: True)
    gpu = DeviceInfo("cuda:0", "NVIDIA H100 80GB HBM3", "cuda")
    p = get_workload("ddp_training").normalize_params({**CNN, "ranks": 2})
    assert "needs ≥ 2 CUDA devices" in ddp_training.unsupported(backend, None, p, gpu)
    assert ddp_training.unsupported(backend, None, {**p, "ranks": 1}, gpu) is None
    cpu = DeviceInfo("cpu", "AMD EPYC", "cpu")
    assert "torchrun" in ddp_training.unsupported(backend, None, {**p, "nodes": 2}, cpu)


@needs_gloo
@pytest.mark.slow
def test_torchrun_runs_the_ddp_suite_as_one_group(watch, tmp_path):
    """The multi-node command, on one node: torchrun's c10d rendezvous on localhost, 2 gloo ranks, --suite ddp."""
    suite = tmp_path / "ddp_tiny.toml"
    suite.write_text('name = "ddp_tiny"\nbaseline = "torch"\n[[cases]]\nworkload = "ddp_training"\n'
                     'backends = ["torch"]\ndevices = ["cpu"]\ndtypes = ["float32"]\n'
                     'params = { model = "cnn", global_batch = 32, steps = 2, ranks = [1, 2] }\n')
    store = tmp_path / "s.sqlite"
    cmd = torchrun("gpubench-ddp-test", "-m", "gpubench.collective", "--suite", str(suite), "--device", "cpu",
                   "--quick", "--store", str(store))
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "samples/s" in run.stdout
    from gpubench.store import ResultStore

    with ResultStore(store, create=False) as s:
        (result,) = s.results(s.run(None).id)  # ranks = [1, 2] became one case at the job's world size
    assert result.status == "ok", result.error
    assert result.spec.param_dict["ranks"] == 2 and result.metrics["launcher"].startswith("torchrun")
    assert watch.survivors() == []


def test_report_section_shows_samples_per_s_and_efficiency():
    from gpubench.report import charts
    from gpubench.report import ddp as section

    rows = [{"status": "ok", "run_label": "run 1", "run_id": 1, "run_index": 0, "series": "torch", "backend": "torch",
             "device": "cpu", "kind": "cpu", "workload": "ddp_training", "dtype": "float32", "size": "",
             "params": {"model": "cnn", "global_batch": 64, "ranks": n}, "median_s": t, "ci95_low_s": None,
             "ci95_high_s": None, "flags": [], "metrics": {"verified_losses": [2.3, 2.2]},
             "scaling_efficiency": eff}
            for n, t, eff in ((1, 1.0, 1.0), (2, 0.625, 0.8))]
    figures = []
    html = section.body(rows, lambda f: figures.append(f) or "<fig>", charts.Colors())
    assert "80 %" in html and "100 %" in html
    (fig,) = figures
    measured, perfect = fig["data"]
    assert measured["x"] == [1, 2] and measured["y"] == [64.0, 102.4]
    assert perfect["y"] == [64.0, 128.0]

"""The input-pipeline workload: its stream, its check, its metrics, and real torch and tf.data loaders."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gpubench.case import run_case
from gpubench.errors import UsageError
from gpubench.harness import HarnessSettings
from gpubench.records import CaseSpec
from gpubench.workloads import get_workload
from gpubench.workloads import input_pipeline as ip
from gpubench.workloads.pipeline_data import decode, make_plan, synthetic_images

TINY = dict(images=12, image_size=48, crop=40, batch_size=4, steps=3, windows=2)
SETTINGS = HarnessSettings(target_rel_ci=1.0)


def _workload():
    return get_workload("input_pipeline")


def _inputs(**params):
    w = _workload()
    p = w.normalize_params(params)
    return w, p, w.make_inputs(p, "float32", np.random.default_rng(0))


# --- the stream ----------------------------------------------------------------------------------
def test_plan_is_a_permutation_per_pass_with_windows_inside_the_picture():
    plan = make_plan(3, 25, 10, 48, 40)
    assert len(plan) == 25
    assert sorted(plan.index[:10]) == list(range(10)) and sorted(plan.index[10:20]) == list(range(10))
    assert plan.top.min() >= 0 and plan.top.max() <= 8 and plan.left.max() <= 8
    assert 0 < plan.flip.sum() < 25
    again = make_plan(3, 25, 10, 48, 40)
    assert np.array_equal(plan.index, again.index) and np.array_equal(plan.flip, again.flip)


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_synthetic_pictures_decode_to_their_size_and_compress(fmt):
    encoded, labels = synthetic_images(0, 3, 64, fmt)
    assert len(encoded) == 3 and labels.dtype == np.int64
    for data in encoded:
        assert decode(data).shape == (64, 64, 3)
    if fmt == "jpeg":  # photograph-like content compresses, unlike noise
        assert sum(map(len, encoded)) < 3 * 64 * 64 * 3 / 2


def test_dataset_sample_is_the_crop_flip_and_normalization_of_its_position():
    w, p, inputs = _inputs(**TINY)
    ds = w.dataset(inputs, p)
    x, y = ds[5]
    assert x.shape == (3, 40, 40) and x.dtype == np.float32
    pixels = decode(inputs["items"][int(ds.plan.index[5])])
    top, left = int(ds.plan.top[5]), int(ds.plan.left[5])
    window = pixels[top:top + 40, left:left + 40]
    if ds.plan.flip[5]:
        window = window[:, ::-1]
    want = (window / 255.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    assert np.allclose(x, want.transpose(2, 0, 1), atol=1e-5)
    assert y == inputs["labels"][int(ds.plan.index[5])]


def test_bad_parameters_are_usage_errors():
    w = _workload()
    with pytest.raises(UsageError, match="does not take the mnist set"):
        w.normalize_params({"dataset": "mnist", "model": "small"})
    with pytest.raises(UsageError, match="larger than image_size"):
        w.normalize_params({"crop": 300})
    with pytest.raises(UsageError, match="need pin_memory"):
        w.normalize_params({"non_blocking": True})
    digits = w.normalize_params({"dataset": "mnist"})
    assert digits["model"] == "cnn" and "crop" not in digits and "format" not in digits


# --- the check --------------------------------------------------------------------------------------
def _good_output(w, p, inputs):
    ref = w.reference(inputs, p)
    return ref.copy(), ref


def test_check_accepts_the_reference_and_rejects_a_wrong_label_a_pixel_and_a_nan_loss():
    w, p, inputs = _inputs(**TINY, format="png")
    out, ref = _good_output(w, p, inputs)
    err, tol = w.check(out, ref, p, "float32")
    assert err == 0.0 and tol == 1e-6
    n_labels = (1 + ip.prefetch_depth(p) + p["steps"]) * p["batch_size"]
    swapped = out.copy()
    swapped[[1, 2]] = swapped[[2, 1]] if swapped[1] != swapped[2] else swapped[[1, 2]] + 1
    assert w.check(swapped, ref, p, "float32")[0] == 1.0
    pixel = out.copy()
    pixel[1 + n_labels + 7] += 0.5
    assert w.check(pixel, ref, p, "float32")[0] > tol
    no_loss = out.copy()
    no_loss[0] = 0.0
    assert w.check(no_loss, ref, p, "float32")[0] == math.inf


def test_metrics_idle_fraction_and_verdict():
    p = _workload().normalize_params({**TINY})
    run = {"loader_s": 1.0, "consume_windows_s": [0.5, 0.5], "windows_s": [1.0, 1.0], "wait_s": 0.9,
           "first_batch_s": 0.1, "loss": 2.0}
    m = ip.pipeline_metrics(run, p)
    b, steps = p["batch_size"], p["steps"]
    assert m["consume_samples_per_s"] == pytest.approx(b * steps / 0.5)
    assert m["e2e_samples_per_s"] == pytest.approx(b * steps / 1.0)
    assert m["device_idle_fraction"] == pytest.approx(0.5) and m["verdict"] == "input-bound"
    assert m["data_wait_fraction"] == pytest.approx(0.45)
    run["windows_s"] = [0.52, 0.52]
    m = ip.pipeline_metrics(run, p)
    assert m["verdict"] == "compute-bound" and m["device_idle_fraction"] < ip.INPUT_BOUND_IDLE


class _ListSession(ip.PipelineSession):
    """A loader over the dataset in this process, a step that does nothing: checks the phases' bookkeeping."""

    def __init__(self, ds, batch):
        self.ds, self.batch, self.steps = ds, batch, 0

    def loader(self):
        def gen():
            for start in range(0, len(self.ds) - self.batch + 1, self.batch):
                items = [self.ds[p] for p in range(start, start + self.batch)]
                yield np.stack([x for x, _ in items]), np.array([y for _, y in items])
        return gen()

    def host_arrays(self, batch):
        return batch

    def to_device(self, batch):
        return batch

    def step(self, batch):
        self.steps += 1
        return float(batch[0].mean())

    def loss_value(self, loss):
        return float(loss)


def test_run_pipeline_reads_the_stream_in_order_and_the_check_passes():
    w, p, inputs = _inputs(**TINY, format="png")
    session = _ListSession(w.dataset(inputs, p), p["batch_size"])
    op = w.bind(session, p, "float32")
    op.call()
    err, tol = w.check(op.result(), w.reference(inputs, p), p, "float32")
    assert err <= tol
    assert len(op.run["windows_s"]) == len(op.run["consume_windows_s"]) == p["windows"]
    # warm-up, the consume-alone windows, the queue refill and the end-to-end windows all stepped
    assert session.steps >= ip.WARMUP_STEPS + 2 * p["windows"] * p["steps"] + ip.prefetch_depth(p)


# --- real loaders --------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2])
def test_torch_dataloader_case_is_ok_with_its_three_rates(workers, watch):
    spec = CaseSpec.make("input_pipeline", "torch", "cpu", "float32", {**TINY, "num_workers": workers})
    r = run_case(spec, SETTINGS)
    assert r.status == "ok", r.error
    m = r.metrics
    for key in ("loader_samples_per_s", "consume_samples_per_s", "e2e_samples_per_s"):
        assert m[key] > 0
    assert m["verdict"] in ("input-bound", "compute-bound") and 0 <= m["device_idle_fraction"] <= 1
    assert m["loader"] == "torch.utils.data.DataLoader" and len(r.samples) == TINY["windows"]
    assert r.rel_error <= r.tolerance
    assert watch.survivors() == []  # the loader's worker processes are gone with the case


@pytest.mark.slow
def test_torch_mnist_case_is_ok():
    spec = CaseSpec.make("input_pipeline", "torch", "cpu", "float32",
                         {"dataset": "mnist", "batch_size": 16, "steps": 3, "windows": 2})
    r = run_case(spec, SETTINGS)
    assert r.status == "ok", r.error
    assert r.tolerance == 1e-6 and r.rel_error <= 1e-6


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_tf_data_case_decodes_what_pillow_decodes(fmt):
    pytest.importorskip("tensorflow")
    spec = CaseSpec.make("input_pipeline", "tensorflow", "cpu", "float32", {**TINY, "format": fmt, "num_workers": 2})
    r = run_case(spec, SETTINGS)
    assert r.status == "ok", r.error
    assert r.metrics["loader"] == "tf.data" and r.rel_error <= r.tolerance


@pytest.mark.parametrize("backend, params, reason", [
    ("torch", {"pin_memory": True}, "cpu has none"),
    ("torch", {"num_workers": 4096}, "usable cores"),
    ("tensorflow", {"model": "resnet18"}, "torch only"),
])
def test_what_a_loader_cannot_do_is_a_skip_with_the_reason(backend, params, reason):
    if backend == "tensorflow":
        pytest.importorskip("tensorflow")
    r = run_case(CaseSpec.make("input_pipeline", backend, "cpu", "float32", {**TINY, **params}), SETTINGS)
    assert r.status == "skipped" and reason in r.error


def test_report_section_draws_workers_against_samples_per_s():
    from gpubench.report import charts
    from gpubench.report import input_pipeline as section

    rows = []
    for workers, e2e in ((0, 100.0), (1, 180.0), (2, 190.0)):
        rows.append({"status": "ok", "run_label": "run 1", "run_id": 1, "run_index": 0, "series": "torch",
                     "backend": "torch", "device": "cpu", "kind": "cpu", "size": "jpeg 256→224 small bs=32 workers=0",
                     "workload": "input_pipeline",
                     "dtype": "float32",
                     "params": {"num_workers": workers, "prefetch_factor": 2, "format": "jpeg", "image_size": 256,
                                "crop": 224, "model": "small", "batch_size": 32},
                     "metrics": {"e2e_samples_per_s": e2e, "consume_samples_per_s": 200.0,
                                 "loader_samples_per_s": 150.0 * (workers + 1),
                                 "device_idle_fraction": 1 - e2e / 200, "data_wait_fraction": 0.1,
                                 "verdict": "input-bound" if e2e < 170 else "compute-bound"},
                     "median_s": 32 / e2e, "ci95_low_s": None, "ci95_high_s": None, "flags": []})
    figures = []
    html = section.body(rows, lambda f: figures.append(f) or "<fig>", charts.Colors())
    assert "input-bound with 0 workers" in html and "best end to end with 2 workers" in html
    (fig,) = figures
    solid, ceiling = fig["data"]
    assert solid["x"] == [0, 1, 2] and solid["y"] == [100.0, 180.0, 190.0]
    assert ceiling["y"] == [200.0] * 3 and ceiling["line"]["dash"] == "dot"


def test_without_pillow_a_picture_case_is_skipped_naming_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "PIL", None)  # as if Pillow were not installed
    r = run_case(CaseSpec.make("input_pipeline", "torch", "cpu", "float32", TINY), SETTINGS)
    assert r.status == "skipped" and "gpubench[pipeline]" in r.error

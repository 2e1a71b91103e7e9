"""The MNIST training workload: hand-written backprop, the reference loop, and torch/Keras agreement."""

from __future__ import annotations

import numpy as np
import pytest

from gpubench.case import run_case
from gpubench.errors import UsageError
from gpubench.records import CaseSpec
from gpubench.workloads import get_workload
from gpubench.workloads.mnist import SHAPES, epoch_orders, initial_weights
from gpubench.workloads.mnist_reference import Trainer
from gpubench.workloads.training import curve_metrics

SMALL = {"epochs": 3, "train_size": 2000, "eval_size": 1000, "accuracy_tolerance": 0.03, "target_accuracy": 0.85}


def _numeric_check(model: str, dropout: float, n: int, rng) -> None:
    """Compare every analytic gradient with central differences (float64) on a few entries each."""
    weights = {k: (v.astype(np.float64) + (0.01 * rng.standard_normal(v.shape) if v.ndim == 1 else 0))
               for k, v in initial_weights(model, 3).items()}
    uniforms = rng.random((n, 128))
    trainer = Trainer(np, model, weights, np.float64, "sgd", 0.1, dropout, lambda shape: uniforms[:, :shape[1]])
    x = rng.random((n, 784))
    y = rng.integers(0, 10, n)
    _, grads = trainer.loss_and_grads(x, y)
    eps = 1e-6
    for name, g in grads.items():
        assert g.shape == SHAPES[model][name]
        flat = trainer.p[name].reshape(-1)
        for i in rng.choice(flat.size, size=min(6, flat.size), replace=False):
            old = flat[i]
            flat[i] = old + eps
            up = float(trainer.loss_and_grads(x, y)[0])
            flat[i] = old - eps
            down = float(trainer.loss_and_grads(x, y)[0])
            flat[i] = old
            numeric = (up - down) / (2 * eps)
            analytic = g.reshape(-1)[i]
            assert abs(numeric - analytic) <= 1e-6 + 1e-4 * abs(numeric), (name, i, numeric, analytic)


def test_mlp_backprop_matches_finite_differences_with_dropout():
    _numeric_check("mlp", 0.2, 5, np.random.default_rng(0))


def test_cnn_backprop_matches_finite_differences():
    _numeric_check("cnn", 0.0, 2, np.random.default_rng(1))


def test_adam_update_matches_the_textbook_formula():
    w = initial_weights("mlp", 0)
    t = Trainer(np, "mlp", w, np.float64, "adam", 0.01, 0.0, None)
    g = {k: np.full(v.shape, 0.5) for k, v in w.items()}
    t.apply(g)
    t.apply(g)
    # Constant gradient: bias-corrected moments are g and g², so each step moves by lr·g/(|g|+eps).
    step = 0.01 * 0.5 / (0.5 + 1e-7)
    assert np.allclose(t.p["w1"], w["w1"] - 2 * step)


def test_initial_weights_are_glorot_uniform_with_zero_biases():
    w = initial_weights("mlp", 0)
    limit = np.sqrt(6 / (784 + 128))
    assert np.abs(w["w1"]).max() <= limit and np.abs(w["w1"]).max() > 0.95 * limit
    assert abs(float(w["w1"].std()) - limit / np.sqrt(3)) < 0.01 * limit
    assert not w["b1"].any() and not w["b2"].any()
    assert np.array_equal(w["w1"], initial_weights("mlp", 0)["w1"])
    assert not np.array_equal(w["w1"], initial_weights("mlp", 1)["w1"])


def test_epoch_orders_are_permutations_per_epoch():
    o = epoch_orders(0, 3, 50)
    assert o.shape == (3, 50)
    assert all(sorted(row) == list(range(50)) for row in o.tolist())
    assert not np.array_equal(o[0], o[1])


def test_params_are_validated():
    wl = get_workload("mnist")
    p = wl.normalize_params({})
    assert p["model"] == "mlp" and p["lr"] == 0.1 and p["dropout"] == 0.2 and p["batch_size"] == 100
    assert wl.normalize_params({"optimizer": "adam"})["lr"] == 1e-3
    for bad, msg in (({"model": "resnet"}, "model must be one of"), ({"lr": 0}, "lr must be positive"),
                     ({"model": "cnn", "dropout": 0.2}, "dropout applies to the mlp"),
                     ({"train_size": 9000}, "offline set has 10,000 images"),
                     ({"target_accuracy": 1.5}, "target_accuracy"), ({"epochs": 0}, "epochs must be >= 1")):
        with pytest.raises(UsageError, match=msg):
            wl.normalize_params(bad)


def test_curve_metrics():
    curve = [{"epoch": i + 1, "epoch_s": s, "eval_s": 0.1, "train_loss": 1.0 / (i + 1), "eval_loss": 0.5,
              "eval_accuracy": a} for i, (s, a) in enumerate([(3.0, 0.8), (1.0, 0.91), (1.2, 0.95)])]
    m = curve_metrics(curve, 1000, 0.9)
    assert m["first_epoch_s"] == 3.0 and m["epoch_s"] == pytest.approx(1.1)
    assert m["time_to_target_s"] == 4.0 and m["target_epoch"] == 2
    assert m["samples_per_s"] == pytest.approx(1000 / 1.1) and m["final_accuracy"] == 0.95
    assert curve_metrics(curve, 1000, 0.99)["time_to_target_s"] is None


def _run(backend: str, **params):
    return run_case(CaseSpec.make("mnist", backend, "cpu", "float32", {**SMALL, **params}))


def test_numpy_reference_learns_quickly_and_records_metrics():
    r = _run("numpy")
    assert r.status == "ok", r.error
    m = r.metrics
    assert m["final_accuracy"] >= 0.85
    assert len(m["curve"]) == 3 and len(r.samples) == 2 and r.number == 1
    assert m["curve"][-1]["train_loss"] < m["curve"][0]["train_loss"]
    assert m["samples_per_s"] == pytest.approx(2000 / m["epoch_s"])
    assert m["time_to_target_s"] is not None and r.rel_error <= 0.03
    assert r.gflops and r.gflops > 0


def test_torch_cpu_lands_near_the_numpy_reference():
    pytest.importorskip("torch")
    r = _run("torch")
    assert r.status == "ok", (r.error, r.metrics.get("traceback"))
    assert r.metrics["final_accuracy"] >= 0.85 and r.rel_error <= 0.03


def test_keras_cpu_lands_near_the_numpy_reference():
    pytest.importorskip("tensorflow")
    r = _run("tensorflow")
    assert r.status == "ok", (r.error, r.metrics.get("traceback"))
    assert r.metrics["final_accuracy"] >= 0.85 and r.rel_error <= 0.03


def test_torch_cnn_matches_numpy_cnn_after_one_epoch():
    pytest.importorskip("torch")
    params = {"model": "cnn", "optimizer": "adam", "epochs": 1, "train_size": 500, "eval_size": 500,
              "accuracy_tolerance": 0.05, "target_accuracy": 0.5}
    r = run_case(CaseSpec.make("mnist", "torch", "cpu", "float32", params))
    assert r.status == "ok", (r.error, r.metrics.get("traceback"))


def test_check_is_the_accuracy_difference():
    wl = get_workload("mnist")
    params = wl.normalize_params({})
    assert wl.check(np.array([0.95]), np.array([0.945]), params, "float32") == (pytest.approx(0.005), 0.01)
    assert wl.check(np.array([np.nan]), np.array([0.945]), params, "float32")[0] == float("inf")


def test_a_backend_that_does_not_learn_is_incorrect(monkeypatch):
    from gpubench.backends.numpy_backend import mnist as numpy_mnist

    original = numpy_mnist.build

    def broken(backend, spec, params, inputs, device):
        return original(backend, spec, {**params, "lr": 1e-6}, inputs, device)

    monkeypatch.setattr(numpy_mnist, "build", broken)
    r = _run("numpy", epochs=2)
    assert r.status == "incorrect" and r.rel_error > 0.3
    assert "exceeds tolerance" in r.error and r.metrics["curve"]


def test_builtin_suite_expands_with_quick_profile():
    from gpubench.spec import Filters, expand, load_suite

    suite = load_suite("mnist")
    full = expand(suite, Filters(backends=("numpy",)), check_memory=False)
    quick = expand(suite, Filters(backends=("numpy",)), quick=True, check_memory=False)
    assert {s.param_dict["model"] for s in full} == {"mlp", "cnn"}
    assert all(s.param_dict["train_size"] == 8000 for s in full)
    assert all(s.param_dict["train_size"] <= 2000 for s in quick)
    sgd = [s for s in full if s.param_dict["optimizer"] == "sgd"][0]
    assert sgd.param_dict["epochs"] == 20 and sgd.param_dict["lr"] == 0.1 and sgd.param_dict["batch_size"] == 100


def test_export_carries_the_training_metrics(store_path, tmp_path):
    """``gpubench export`` keeps MNIST's metrics: JSON in full, CSV as ``metric.*`` columns plus the curve."""
    import csv
    import io
    import json

    from conftest import run_gpubench

    suite = tmp_path / "m.toml"
    suite.write_text('name = "m"\n[[cases]]\nworkload = "mnist"\nbackends = ["numpy"]\ndtypes = ["float32"]\n'
                     'params = { epochs = 2, train_size = 1000, eval_size = 500, target_accuracy = 0.5, '
                     'accuracy_tolerance = 0.05 }\n')
    proc = run_gpubench("run", "--suite", str(suite))
    assert proc.returncode == 0, proc.stderr
    [row] = json.loads(run_gpubench("export", "--format", "json").stdout)["results"]
    metrics = row["metrics"]
    assert row["status"] == "ok" and 0.5 < metrics["final_accuracy"] <= 1
    assert len(metrics["curve"]) == 2 and metrics["samples_per_s"] > 0
    [line] = list(csv.DictReader(io.StringIO(run_gpubench("export", "--format", "csv").stdout)))
    assert float(line["metric.final_accuracy"]) == pytest.approx(metrics["final_accuracy"])
    assert json.loads(line["metrics"])["curve"] == metrics["curve"]


def test_every_backend_runs_the_workloads_epoch_loop():
    """The workload owns the epoch clock: each backend supplies a session, none times itself."""
    from gpubench.backends import get_backend

    for name in ("numpy", "torch", "tensorflow", "cupy"):
        backend = get_backend(name)
        if "mnist" not in backend.workloads():
            continue
        module = backend._ops_module("mnist")
        source = open(module.__file__, encoding="utf-8").read()
        assert "perf_counter" not in source, f"{name}'s mnist module reads a clock of its own"

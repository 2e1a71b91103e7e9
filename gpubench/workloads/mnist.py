"""End-to-end MNIST training: the reference loop every backend runs the same way.

Unlike the kernel workloads, one *call* here is a whole training run: the timing of interest is
per epoch, and a training run is far too long to repeat dozens of times. So the workload measures
itself (``self_timed``): each backend supplies a
:class:`~gpubench.workloads.training.TrainingSession` (start, train one epoch, evaluate), the
workload runs the epochs and owns their clock (:func:`~gpubench.workloads.training.run_training`),
the case path makes the one call it makes for correctness anyway, and the case's samples are
that run's epoch times (the first epoch, which carries one-time costs such as
tracing and autotuning, is left out of the samples when there are two or more epochs, and is
reported as ``first_epoch_s``).

Every backend trains the same model from the same Glorot-uniform initial weights (zero biases),
drawn here from ``seed``, on the same data in the same order (one permutation per epoch, drawn
here with NumPy), with the same hyperparameters. Only dropout masks come from each backend's own
generator. Correctness: the final evaluation accuracy must be within ``accuracy_tolerance``
(1 percentage point by default) of the NumPy reference loop run in float64; ``rel_error`` of the
record holds that absolute accuracy difference.

Metrics stored per case: ``samples_per_s``, ``epoch_s`` (median), ``first_epoch_s``, ``train_s``
(all epochs), ``time_to_target_s`` (training time until the first evaluation at or above
``target_accuracy``; evaluation time excluded; None when never reached), ``target_epoch``,
``final_accuracy``, ``final_train_loss`` and ``curve`` (per epoch: ``epoch``, ``epoch_s``,
``eval_s``, ``train_loss``, ``eval_loss``, ``eval_accuracy``).
"""

from __future__ import annotations

import math
import time

import numpy as np

from gpubench.errors import UsageError
from gpubench.harness import HarnessSettings, Measurement
from gpubench.stats import summarize
from gpubench.workloads.base import Param, Workload, host_dtype
from gpubench.workloads.mnist_reference import ArraySession, numpy_uniform
from gpubench.workloads.training import TrainingOp, curve_metrics, run_training, training_op

#: Parameter shapes of each model (canonical layout: dense ``(in, out)``, conv ``(K, C, R, S)``).
SHAPES = {
    "mlp": {"w1": (784, 128), "b1": (128,), "w2": (128, 10), "b2": (10,)},
    "cnn": {"c1": (6, 1, 5, 5), "cb1": (6,), "c2": (16, 6, 5, 5), "cb2": (16,),
            "w3": (256, 120), "b3": (120,), "w4": (120, 10), "b4": (10,)},
}

#: Forward FLOPs of one image (multiply-adds × 2); a training step costs about three forwards.
FORWARD_FLOPS = {
    "mlp": 2 * (784 * 128 + 128 * 10),
    "cnn": 2 * (24 * 24 * 6 * 25 + 8 * 8 * 16 * 150 + 256 * 120 + 120 * 10),
}

DEFAULT_LR = {"sgd": 0.1, "adam": 1e-3}


def initial_weights(model: str, seed: int) -> dict[str, np.ndarray]:
    """Glorot-uniform weights and zero biases, float32, identical for every backend.

    Glorot uniform: U(−l, l) with l = √(6 / (fan_in + fan_out)); for a convolution the fans are
    C·R·S and K·R·S (the Keras ``GlorotUniform`` convention).
    """
    rng = np.random.default_rng([seed, 1])
    out = {}
    for name, shape in SHAPES[model].items():
        if len(shape) == 1:
            out[name] = np.zeros(shape, dtype=np.float32)
            continue
        if len(shape) == 2:
            fan_in, fan_out = shape
        else:
            k, c, r, s = shape
            fan_in, fan_out = c * r * s, k * r * s
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        out[name] = rng.uniform(-limit, limit, size=shape).astype(np.float32)
    return out


def epoch_orders(seed: int, epochs: int, n: int) -> np.ndarray:
    """One permutation of ``range(n)`` per epoch, shape ``(epochs, n)``, from ``seed``."""
    rng = np.random.default_rng([seed, 2])
    return np.stack([rng.permutation(n) for _ in range(epochs)]).astype(np.int64)


class MnistWorkload(Workload):
    """Train the MNIST MLP or a small LeNet-style CNN with minibatch SGD or Adam; time per epoch."""

    name = "mnist"
    unit = "gflops"
    description = "end-to-end MNIST training (MLP or LeNet-style CNN; SGD or Adam)"
    report_section = "training"
    #: The case path takes the samples from the one training run instead of calling it repeatedly.
    self_timed = True
    params = {
        "model": Param(str, "mlp", choices=("mlp", "cnn")),
        "optimizer": Param(str, "sgd", choices=("sgd", "adam")),
        "epochs": Param(int, 10),
        "batch_size": Param(int, 100),
        "lr": Param(float),
        "dropout": Param(float),
        "train_size": Param(int, 8000),
        "eval_size": Param(int, 2000),
        "data": Param(str, "offline", choices=("offline", "full")),
        "seed": Param(int, 0, minimum=0),
        "target_accuracy": Param(float, 0.9),
        "accuracy_tolerance": Param(float, 0.01),
    }

    def normalize_params(self, params):
        out = super().normalize_params(params)
        out.setdefault("lr", DEFAULT_LR[out["optimizer"]])
        out.setdefault("dropout", 0.2 if out["model"] == "mlp" else 0.0)
        if not out["lr"] > 0:
            raise UsageError(f"mnist: lr must be positive, got {out['lr']}")
        if not 0 <= out["dropout"] < 1:
            raise UsageError(f"mnist: dropout must be in [0, 1), got {out['dropout']}")
        if out["model"] == "cnn" and out["dropout"] != 0:
            raise UsageError("mnist: dropout applies to the mlp model only")
        if not 0 < out["target_accuracy"] <= 1:
            raise UsageError(f"mnist: target_accuracy must be in (0, 1], got {out['target_accuracy']}")
        if not 0 < out["accuracy_tolerance"] <= 1:
            raise UsageError(f"mnist: accuracy_tolerance must be in (0, 1], got {out['accuracy_tolerance']}")
        if out["data"] == "offline" and out["train_size"] + out["eval_size"] > 10_000:
            raise UsageError(f"mnist: the offline set has 10,000 images; train_size + eval_size is "
                             f"{out['train_size'] + out['eval_size']} (use data = \"full\" after downloading)")
        return out

    def make_inputs(self, params, dtype, rng):
        """Images scaled to [0, 1] as (N, 784), labels, per-epoch orders and the initial weights.

        ``rng`` (seeded per problem) is deliberately not used: data order and weights come from
        ``params["seed"]`` so that every backend trains on exactly the same problem.
        """
        from gpubench.mnist_data import load

        data = load(params["data"], params["train_size"], params["eval_size"])
        host = np.dtype(np.float64 if dtype == "float64" else np.float32)
        inputs = {
            "x_train": (data.x_train.reshape(len(data.x_train), 784) / 255.0).astype(host),
            "y_train": data.y_train.astype(np.int64),
            "x_eval": (data.x_eval.reshape(len(data.x_eval), 784) / 255.0).astype(host),
            "y_eval": data.y_eval.astype(np.int64),
            "order": epoch_orders(params["seed"], params["epochs"], len(data.x_train)),
        }
        inputs.update({f"w:{k}": v for k, v in initial_weights(params["model"], params["seed"]).items()})
        return inputs

    #: Parameters that judge a run but do not change the reference training.
    JUDGING = ("target_accuracy", "accuracy_tolerance")

    def problem_params(self, params):
        """Every parameter but the target and the accepted difference: one float64 training serves all of them."""
        return {k: v for k, v in super().problem_params(params).items() if k not in self.JUDGING}

    def reference_modules(self):
        """This module, the reference loop and the epoch loop (their code trains the reference)."""
        return (*super().reference_modules(), "gpubench.workloads.mnist_reference", "gpubench.workloads.training")

    def reference_cost(self, params):
        """Every epoch's training steps and the evaluations after them (one final accuracy: always worth keeping)."""
        evaluation = FORWARD_FLOPS[params["model"]] * params["eval_size"]
        return params["epochs"] * (self.flops(params) + evaluation)

    def reference(self, inputs, params):
        """Final evaluation accuracy of the NumPy reference loop in float64 (same masks as NumPy float32).

        Computed once per problem, not once per case: the case path keeps it in the reference cache
        (:mod:`gpubench.refcache`), keyed by :meth:`problem_params`, so the NumPy, torch, TensorFlow,
        JAX and CuPy cases of one training (and later runs) share it.
        """
        session = ArraySession(np, inputs, params, np.float64, numpy_uniform(params["seed"] + 1))
        curve = run_training(session, params["epochs"])
        return np.array([curve[-1]["eval_accuracy"]])

    def bind(self, op, params, dtype):
        """The backend's :class:`~gpubench.workloads.training.TrainingSession` as a one-call training op."""
        return training_op(op, params)

    def check(self, out, ref, params, dtype):
        """Absolute difference of final accuracies, and the accepted difference."""
        out = np.asarray(out, dtype=np.float64).ravel()
        if out.shape != (1,) or not np.isfinite(out[0]):
            return math.inf, params["accuracy_tolerance"]
        return float(abs(out[0] - ref[0])), params["accuracy_tolerance"]

    def measurement(self, op: TrainingOp, settings: HarnessSettings) -> Measurement:
        """Samples from the training run already made: steady-state epoch times, one call each."""
        start = time.perf_counter()
        curve = op.curve
        if not curve:
            raise RuntimeError("mnist: no training run was made before measurement()")
        times = [c["epoch_s"] for c in curve]
        samples = tuple(max(t, 1e-12) for t in (times[1:] if len(times) > 1 else times))
        params = op.params
        op.metrics.update(curve_metrics(curve, params["train_size"], params["target_accuracy"]))
        rel_ci = summarize(list(samples)).rel_ci_halfwidth if len(samples) > 1 else math.inf
        return Measurement(samples, 1, op.timer.name, rel_ci <= settings.target_rel_ci,
                           1 if len(times) > 1 else 0, time.perf_counter() - start)

    def flops(self, params):
        """FLOPs of one epoch's training steps (≈ three forward passes per image)."""
        return 3.0 * FORWARD_FLOPS[params["model"]] * params["train_size"]

    def memory_bytes(self, params, dtype):
        n = params["train_size"] + params["eval_size"]
        # images as float64 at most, twice (host and a copy), plus the orders.
        return int(n * 784 * 8 * 2 + params["epochs"] * params["train_size"] * 8 + 64 * 2**20)

    def device_bytes(self, params, dtype):
        """The images on the device in the case's dtype, and the model with its gradients and optimizer state."""
        n = params["train_size"] + params["eval_size"]
        return int(n * 784 * host_dtype(dtype).itemsize + 64 * 2**20)

    def describe(self, params):
        return (f"{params['model']} {params['optimizer']} {params['epochs']}ep "
                f"n={params['train_size']} bs={params['batch_size']}")

"""The training-run contract: backends supply a :class:`TrainingSession`, the workload owns the epoch clock.

A training workload (MNIST) is not a kernel called thousands of times: one call is a whole run.
Every backend therefore supplies the same three steps — start from the shared initial weights,
train one epoch in the shared data order, evaluate — and :func:`run_training` times them all the
same way: the device is synchronized before the epoch clock starts and again before it stops,
and evaluation is timed apart. Whatever a backend does per batch (gathering the minibatch,
the step, the loss) happens inside its ``train_epoch`` and so inside the clock, on every backend.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gpubench.harness import HostTimer
from gpubench.ops import BoundOp


class TrainingSession:
    """One backend's model, optimizer and data on its device, for one training case.

    Subclasses implement :meth:`start`, :meth:`train_epoch` and :meth:`evaluate`; :meth:`sync`
    waits for queued device work (a no-op on synchronous CPU backends) and :meth:`close` frees
    device memory.
    """

    #: Kernel or model source texts this session runs (hashed into the record, like an op's).
    sources: dict[str, str] = {}

    def start(self) -> None:
        """A fresh model from the shared initial weights, fresh optimizer state and dropout generator."""
        raise NotImplementedError

    def train_epoch(self, epoch: int) -> float:
        """Train one epoch over the shared order ``order[epoch]``; return the mean batch loss (a host float)."""
        raise NotImplementedError

    def evaluate(self) -> tuple[float, float]:
        """Mean loss and accuracy on the evaluation set (host floats; no dropout)."""
        raise NotImplementedError

    def sync(self) -> None:
        """Wait until the device finished all queued work."""

    def close(self) -> None:
        """Free what the session holds on the device."""


def weights_of(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The initial weights inside a training case's inputs (keys ``w:<name>``), by name."""
    return {k[2:]: v for k, v in inputs.items() if k.startswith("w:")}


def run_training(session: TrainingSession, epochs: int) -> list[dict[str, float]]:
    """Run a whole training on ``session`` and return the per-epoch curve.

    Each entry: ``epoch``, ``epoch_s`` (training steps, device synchronized at both ends),
    ``eval_s``, ``train_loss``, ``eval_loss``, ``eval_accuracy``. Stops early when the loss
    is no longer finite.
    """
    session.start()
    curve: list[dict[str, float]] = []
    for epoch in range(epochs):
        session.sync()
        t0 = time.perf_counter()
        train_loss = float(session.train_epoch(epoch))
        session.sync()
        t1 = time.perf_counter()
        eval_loss, accuracy = session.evaluate()
        t2 = time.perf_counter()
        curve.append({"epoch": epoch + 1, "epoch_s": t1 - t0, "eval_s": t2 - t1, "train_loss": train_loss,
                      "eval_loss": float(eval_loss), "eval_accuracy": float(accuracy)})
        if not math.isfinite(train_loss):
            break
    return curve


def curve_metrics(curve: list[dict[str, float]], train_size: int, target: float) -> dict[str, Any]:
    """Derive the stored metrics from a per-epoch curve."""
    times = [c["epoch_s"] for c in curve]
    steady = times[1:] if len(times) > 1 else times
    epoch_s = statistics.median(steady)
    elapsed, to_target, target_epoch = 0.0, None, None
    for c in curve:
        elapsed += c["epoch_s"]
        if to_target is None and c["eval_accuracy"] >= target:
            to_target, target_epoch = elapsed, c["epoch"]
    return {
        "samples_per_s": train_size / epoch_s if epoch_s > 0 else None,
        "epoch_s": epoch_s,
        "first_epoch_s": times[0],
        "train_s": sum(times),
        "time_to_target_s": to_target,
        "target_epoch": target_epoch,
        "target_accuracy": target,
        "final_accuracy": curve[-1]["eval_accuracy"],
        "final_train_loss": curve[-1]["train_loss"],
        "epochs_run": len(curve),
        "curve": curve,
    }


@dataclass
class TrainingOp(BoundOp):
    """A :class:`BoundOp` whose one call is a whole training run; ``curve`` holds the last run's epochs."""

    session: TrainingSession | None = None
    params: dict[str, Any] = field(default_factory=dict)
    curve: list[dict[str, float]] = field(default_factory=list)


def training_op(session: TrainingSession, params: dict[str, Any]) -> TrainingOp:
    """Wrap a backend's session: ``call`` trains ``params["epochs"]`` epochs (keeping the curve), ``result`` is
    the final accuracy."""
    op = TrainingOp(call=lambda: None, result=lambda: np.array([np.nan]), timer=HostTimer(session.sync),
                    close=session.close, sources=dict(session.sources), session=session, params=dict(params))

    def call() -> list[dict[str, float]]:
        op.curve = run_training(session, params["epochs"])
        return op.curve

    def result() -> np.ndarray:
        return np.array([op.curve[-1]["eval_accuracy"] if op.curve else np.nan])

    op.call, op.result = call, result
    return op

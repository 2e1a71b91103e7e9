"""Where the GPU starves: what a data loader delivers against what the training step consumes.

A training step is only as fast as the data that reaches it. Loading, decoding, augmenting and
copying batches on the CPU can leave the device idle; the remedies are what every framework's
loader offers: worker processes (``num_workers``), page-locked host memory (``pin_memory``),
prefetching (``prefetch_factor``) and asynchronous host→device copies (``non_blocking``). This
workload feeds a real training step from a real loader (torch ``DataLoader``, or ``tf.data`` with
``map(num_parallel_calls)`` and ``prefetch``) and measures, in one case:

1. **loader alone**: samples/s the loader delivers when nothing consumes them (after its first batch,
   which carries the start of its workers, and after the batches it had prefetched meanwhile);
2. **consume alone**: samples/s the training step runs at on batches already on the device
   (two batches, alternated), after a warm-up, as the median of ``windows`` windows of ``steps`` steps;
3. **end to end**: samples/s of the loop a user writes — next batch, copy to the device, step —
   in ``windows`` windows of ``steps`` batches, the device synchronized at each window's end. Each
   window's time per batch is one sample of the case, so its median and interval are the
   end-to-end figure's;
4. the **device idle fraction** ``1 − end-to-end / consume-alone`` (the share of the loop's time in
   which the device could have been training but had no data) and the host's **data-wait fraction**
   (the share of the loop's time spent waiting for the next batch and its copy).

The **verdict** in the record (``metrics["verdict"]``) is ``input-bound`` when the idle fraction is
at least :data:`INPUT_BOUND_IDLE` (the loop runs below 85 % of what the step could consume), else
``compute-bound``.

**Correctness.** Every sample's content is fixed by its stream position (:mod:`~gpubench.workloads.pipeline_data`):
the first :data:`CHECK_BATCHES` batches the loader delivered are compared with a float64 reference
decoded and augmented by the same rules (Pillow's decoder), every label of the loader-alone phase must
be the expected one (order and completeness across worker processes), and the last training loss
must be finite. The tolerance is 1e-6 for PNG and MNIST (only float32 rounding differs) and 2e-2 for
JPEG, whose decoders may differ by a level on a few pixels (TensorFlow's against Pillow's).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gpubench.errors import UsageError
from gpubench.harness import HarnessSettings, HostTimer, Measurement
from gpubench.ops import BoundOp
from gpubench.stats import summarize
from gpubench.workloads.base import Param, Workload
from gpubench.workloads.nets import DIGIT_MODELS, IMAGE_MODELS, train_step_flops
from gpubench.workloads.pipeline_data import IMAGE_CLASSES, PipelineDataset, make_plan, synthetic_images

#: Batches whose every value is checked against the float64 reference.
CHECK_BATCHES = 2
#: The device idle fraction at and above which a case is ``input-bound``.
INPUT_BOUND_IDLE = 0.15
#: Relative-error bound of the delivered samples, by what was decoded.
TOLERANCE = {"png": 1e-6, "mnist": 1e-6, "jpeg": 2e-2}
#: Warm-up of the training step before anything is timed: at least this many steps and this long.
WARMUP_STEPS, WARMUP_S = 3, 0.3
#: The loop's batch count beyond the timed ones, so that no phase runs out of data.
SLACK_BATCHES = 4
MNIST_SIDE = 28


class PipelineSession:
    """A backend's loader and training step for one case (the workload owns the clock).

    Subclasses implement every method but :meth:`sync` (a no-op for synchronous CPU backends) and
    :meth:`close`. A host batch is whatever the loader yields; :meth:`host_arrays` turns it into
    ``(samples, labels)`` NumPy arrays in the ``(N, C, H, W)`` layout for the check.
    """

    clock: str = "perf_counter"
    sources: dict[str, str] = {}
    info: dict[str, Any] = {}
    """Facts about the loader as built (its class, worker start method, ...), stored in the metrics."""

    def loader(self) -> Iterator[Any]:
        """A fresh iterator over the loader's batches (starts its workers)."""
        raise NotImplementedError

    def host_arrays(self, batch: Any) -> tuple[np.ndarray, np.ndarray]:
        """A host batch as NumPy ``(samples (N, C, H, W), labels (N,))``."""
        raise NotImplementedError

    def to_device(self, batch: Any) -> Any:
        """The batch where the model is (a host→device copy on a GPU, as the case's options say)."""
        raise NotImplementedError

    def step(self, batch: Any) -> Any:
        """One training step on a device batch; returns the loss (a device scalar: no wait)."""
        raise NotImplementedError

    def loss_value(self, loss: Any) -> float:
        """A loss as a host float (waits for the device)."""
        raise NotImplementedError

    def sync(self) -> None:
        """Wait until the device finished its queued work."""

    def close(self) -> None:
        """Stop the loader's workers and free device memory."""


@dataclass
class PipelineOp(BoundOp):
    """The one-call op of a case: ``call`` runs the three phases; ``result`` is what the check reads."""

    session: PipelineSession | None = None
    params: dict[str, Any] = field(default_factory=dict)
    run: dict[str, Any] = field(default_factory=dict)


def prefetch_depth(params: dict[str, Any]) -> int:
    """Batches a loader may hold ready before anyone asks (its workers × prefetch factor; at least 1)."""
    workers = params["num_workers"]
    return max(1, workers * params["prefetch_factor"]) if workers > 0 else 1


def total_batches(params: dict[str, Any]) -> int:
    """Batches the stream must hold: first, drained, loader-alone, warm, end-to-end windows and slack."""
    depth = prefetch_depth(params)
    return 1 + depth + params["steps"] + depth + params["steps"] * params["windows"] + SLACK_BATCHES


def run_pipeline(session: PipelineSession, params: dict[str, Any]) -> dict[str, Any]:
    """The three phases on one loader iterator; returns the timings and what the check needs.

    Keys: ``first_batch_s``, ``loader_s`` (for ``steps`` batches), ``consume_windows_s`` (per window of
    ``steps`` steps on resident batches), ``windows_s`` (per end-to-end window of ``steps`` batches),
    ``wait_s`` (host time waiting for batches and copies in those windows), ``loss`` (the last step's),
    ``checked`` (the first batches as arrays) and ``labels`` (every label of the loader-alone phase, from position 0).
    """
    steps, windows, depth = params["steps"], params["windows"], prefetch_depth(params)
    out: dict[str, Any] = {"checked": [], "labels": []}

    def keep(batch: Any) -> None:
        x, y = session.host_arrays(batch)
        if len(out["checked"]) < CHECK_BATCHES:
            out["checked"].append(np.asarray(x))
        out["labels"].append(np.asarray(y))

    t0 = time.perf_counter()
    it = session.loader()
    first = next(it)
    out["first_batch_s"] = time.perf_counter() - t0
    keep(first)
    kept = [first]
    for _ in range(depth):  # what the workers prefetched while the first batch was awaited
        batch = next(it)
        keep(batch)
        if len(kept) < 2:
            kept.append(batch)
    # 1. The loader alone.
    t0 = time.perf_counter()
    for _ in range(steps):
        keep(next(it))
    out["loader_s"] = time.perf_counter() - t0
    # 2. The step alone, on two batches already on the device (each a fresh copy of a delivered batch),
    #    after a warm-up (allocation, kernel selection, autotuning) of WARMUP_STEPS steps and WARMUP_S seconds.
    resident = [session.to_device(b) for b in kept]
    t0, warm = time.perf_counter(), 0
    while warm < WARMUP_STEPS or time.perf_counter() - t0 < WARMUP_S:
        session.step(resident[warm % len(resident)])
        session.sync()
        warm += 1
    out["consume_windows_s"] = []
    for _ in range(windows):
        t0 = time.perf_counter()
        for i in range(steps):
            session.step(resident[i % len(resident)])
        session.sync()
        out["consume_windows_s"].append(time.perf_counter() - t0)
    del resident
    # 3. End to end: the loop as a user writes it.
    for _ in range(depth):  # refill the loader's queue as it is in steady state
        session.step(session.to_device(next(it)))
    session.sync()
    out["windows_s"], out["wait_s"] = [], 0.0
    loss = None
    for _ in range(windows):
        t0 = time.perf_counter()
        for _ in range(steps):
            tw = time.perf_counter()
            batch = session.to_device(next(it))
            out["wait_s"] += time.perf_counter() - tw
            loss = session.step(batch)
        session.sync()
        out["windows_s"].append(time.perf_counter() - t0)
    out["loss"] = session.loss_value(loss) if loss is not None else math.nan
    del it
    return out


def pipeline_metrics(run: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """The stored metrics of a run: the three rates, the idle and wait fractions, the verdict."""
    b, steps = params["batch_size"], params["steps"]
    per_batch = summarize([w / steps for w in run["windows_s"]]).median
    loader = b * steps / run["loader_s"] if run["loader_s"] > 0 else math.inf
    consume_per_batch = summarize([w / steps for w in run["consume_windows_s"]]).median
    consume = b / consume_per_batch if consume_per_batch > 0 else math.inf
    e2e = b / per_batch if per_batch > 0 else math.inf
    idle = max(0.0, 1.0 - e2e / consume) if math.isfinite(consume) and consume > 0 else 0.0
    total = sum(run["windows_s"])
    return {
        "loader_samples_per_s": loader, "consume_samples_per_s": consume, "e2e_samples_per_s": e2e,
        "samples_per_s": e2e, "device_idle_fraction": idle,
        "data_wait_fraction": run["wait_s"] / total if total > 0 else None,
        "verdict": "input-bound" if idle >= INPUT_BOUND_IDLE else "compute-bound",
        "first_batch_s": run["first_batch_s"], "final_loss": run["loss"],
        "batches_timed": steps * params["windows"], "prefetch_depth": prefetch_depth(params),
    }


class InputPipelineWorkload(Workload):
    """A real loader feeding a real training step: loader alone, step alone, end to end (see the module)."""

    name = "input_pipeline"
    unit = "gflops"
    description = "data loader → training step: loader-only, consume-only and end-to-end samples/s, idle fraction"
    report_section = "input_pipeline"
    self_timed = True
    version = 1
    params = {
        "dataset": Param(str, "images", minimum=None, choices=("images", "mnist")),
        "format": Param(str, "jpeg", minimum=None, choices=("jpeg", "png")),
        "model": Param(str, None, minimum=None, choices=DIGIT_MODELS + IMAGE_MODELS),
        "images": Param(int, 256),
        "image_size": Param(int, 256),
        "crop": Param(int, 224),
        "batch_size": Param(int, 32),
        "steps": Param(int, 20),
        "windows": Param(int, 5),
        "lr": Param(float, 0.01),
        "seed": Param(int, 0, minimum=0),
        # How the data reaches the step (not what is computed): the loader's options.
        "num_workers": Param(int, 0, minimum=0, mode=True, tag="workers", label_default=True),
        "pin_memory": Param(bool, False, minimum=None, mode=True, tag="pinned"),
        "prefetch_factor": Param(int, 2, mode=True, tag="prefetch"),
        "non_blocking": Param(bool, False, minimum=None, mode=True, tag="non_blocking"),
    }

    def normalize_params(self, params):
        out = super().normalize_params(params)
        digits = out["dataset"] == "mnist"
        out.setdefault("model", "cnn" if digits else "small")
        if digits != (out["model"] in DIGIT_MODELS):
            want = ", ".join(DIGIT_MODELS if digits else IMAGE_MODELS)
            raise UsageError(f"input_pipeline: model {out['model']!r} does not take the {out['dataset']} set "
                             f"(use {want})")
        if digits:
            for key in ("format", "image_size", "crop", "images"):
                out.pop(key, None)  # the digits are what they are: no encoding, no crop
        elif out["crop"] > out["image_size"]:
            raise UsageError(f"input_pipeline: crop = {out['crop']} is larger than image_size = {out['image_size']}")
        if out["non_blocking"] and not out["pin_memory"]:
            raise UsageError("input_pipeline: non_blocking copies need pin_memory = true (pageable copies block)")
        if not out["lr"] > 0:
            raise UsageError(f"input_pipeline: lr must be positive, got {out['lr']}")
        return out

    # --- the problem ------------------------------------------------------------------------------
    def side(self, params: dict[str, Any]) -> int:
        """Side of one sample as the model sees it (the crop, or 28 for digits)."""
        return MNIST_SIDE if params["dataset"] == "mnist" else params["crop"]

    def classes(self, params: dict[str, Any]) -> int:
        return 10 if params["dataset"] == "mnist" else IMAGE_CLASSES

    def dataset(self, inputs: dict[str, Any], params: dict[str, Any]) -> PipelineDataset:
        """The map-style dataset over the case's stream positions (shared by the loaders and the reference)."""
        return PipelineDataset(params["dataset"], list(inputs["items"]), inputs["labels"], inputs["plan"],
                               params.get("crop", MNIST_SIDE))

    def make_inputs(self, params, dtype, rng):
        """The stored set (encoded pictures or digits), labels and the stream plan, all from ``params["seed"]``.

        ``rng`` is not used: every backend and loader setting gets exactly the same stream.
        """
        if dtype != "float32":
            from gpubench.errors import Unavailable

            raise Unavailable(f"input_pipeline: the loaders deliver float32 samples, not {dtype}")
        positions = total_batches(params) * params["batch_size"]
        if params["dataset"] == "mnist":
            from gpubench.mnist_data import load

            data = load("offline", 8000, 2000)
            items, labels = data.x_train, data.y_train.astype(np.int64)
            plan = make_plan(params["seed"], positions, len(items), MNIST_SIDE, MNIST_SIDE)
        else:
            encoded, labels = synthetic_images(params["seed"], params["images"], params["image_size"],
                                               params["format"])
            items = np.empty(len(encoded), dtype=object)
            items[:] = encoded
            plan = make_plan(params["seed"], positions, len(encoded), params["image_size"], params["crop"])
        return {"items": items, "labels": labels, "plan": plan}

    def reference(self, inputs, params):
        """``[1, labels of the loader-alone phase…, the first batches' samples in float64…]``."""
        ds = self.dataset(inputs, params)
        b = params["batch_size"]
        n_labels = (1 + prefetch_depth(params) + params["steps"]) * b
        labels = [ds.labels[int(ds.plan.index[p])] for p in range(n_labels)]
        samples = [ds.sample(p, np.float64).ravel() for p in range(CHECK_BATCHES * b)]
        return np.concatenate([[1.0], np.asarray(labels, dtype=np.float64), *samples])

    def check(self, out, ref, params, dtype):
        """Labels exact (else 1.0), the last loss finite (else inf), the samples within the format's tolerance."""
        tol = TOLERANCE["mnist" if params["dataset"] == "mnist" else params["format"]]
        out = np.asarray(out, dtype=np.float64).ravel()
        if out.shape != ref.shape or out[0] != 1.0:
            return math.inf, tol
        n_labels = (1 + prefetch_depth(params) + params["steps"]) * params["batch_size"]
        if np.any(out[1:1 + n_labels] != ref[1:1 + n_labels]):
            return 1.0, tol
        got, want = out[1 + n_labels:], ref[1 + n_labels:]
        if not np.all(np.isfinite(got)):
            return math.inf, tol
        return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-300)), tol

    def tolerance(self, params, dtype):
        return TOLERANCE["mnist" if params["dataset"] == "mnist" else params["format"]]

    def flops(self, params):
        """FLOPs of one training step (one batch): the end-to-end rate in GFLOP/s is the step's work rate."""
        return train_step_flops(params["model"], self.side(params), self.classes(params), params["batch_size"])

    def sample_bytes(self, params: dict[str, Any]) -> int:
        """Bytes of one sample as the step reads it (float32). Not a memory-traffic count: the workload declares
        no ``bytes_moved``, so a training step never lands on a roofline."""
        side = self.side(params)
        return (1 if params["dataset"] == "mnist" else 3) * side * side * 4

    def memory_bytes(self, params, dtype):
        sample = self.sample_bytes(params)
        b = params["batch_size"]
        stored = 0 if params["dataset"] == "mnist" else params["images"] * params["image_size"] ** 2 * 3
        # the set (at most its raw size), the reference's float64 batches, batches in flight, the model.
        in_flight = (prefetch_depth(params) + 4) * b * sample
        return int(stored + CHECK_BATCHES * b * sample * 2 * 2 + in_flight + 256 * 2**20)

    def describe(self, params):
        if params["dataset"] == "mnist":
            return f"mnist {params['model']} bs={params['batch_size']}"
        return (f"{params['format']} {params['image_size']}→{params['crop']} {params['model']} "
                f"bs={params['batch_size']}")

    # --- running ------------------------------------------------------------------------------------
    def bind(self, op: PipelineSession, params, dtype):
        """The backend's session as a one-call op: the call runs the phases, ``result`` packs what is checked."""
        bound = PipelineOp(call=lambda: None, result=lambda: np.zeros(0), timer=HostTimer(op.sync),
                           close=op.close, sources=dict(op.sources), session=op, params=dict(params))
        bound.metrics.update(op.info)

        def call() -> dict[str, Any]:
            bound.run = run_pipeline(op, params)
            return bound.run

        def result() -> np.ndarray:
            run = bound.run
            if not run:
                raise RuntimeError("input_pipeline: no run was made before result()")
            finite = 1.0 if math.isfinite(run["loss"]) else 0.0
            labels = np.concatenate(run["labels"])[:(1 + prefetch_depth(params) + params["steps"])
                                                    * params["batch_size"]]
            return np.concatenate([[finite], labels.astype(np.float64),
                                   *[np.asarray(x, dtype=np.float64).ravel() for x in run["checked"]]])

        bound.call, bound.result = call, result
        return bound

    def measurement(self, op: PipelineOp, settings: HarnessSettings) -> Measurement:
        """Samples from the run already made: each end-to-end window's seconds per batch."""
        start = time.perf_counter()
        run = op.run
        if not run:
            raise RuntimeError("input_pipeline: no run was made before measurement()")
        steps = op.params["steps"]
        samples = tuple(max(w / steps, 1e-12) for w in run["windows_s"])
        op.metrics.update(pipeline_metrics(run, op.params))
        rel_ci = summarize(list(samples)).rel_ci_halfwidth if len(samples) > 1 else math.inf
        return Measurement(samples, 1, op.session.clock, rel_ci <= settings.target_rel_ci, 0,
                           time.perf_counter() - start)

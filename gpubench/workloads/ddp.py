"""Data-parallel training on torch.distributed: how close N ranks come to N times one.

``ddp_training`` trains a model with ``DistributedDataParallel`` on ``ranks`` processes (gloo on
the CPU, NCCL on GPUs, one rank per GPU), started by gpubench's rank launcher
(:mod:`gpubench.backends.torch_backend.collective`) inside ``gpubench run`` or by torchrun across
nodes (``python -m gpubench.collective --suite ddp``). The **global batch is the same** whatever the
rank count (strong scaling): each rank trains on its ``global_batch / ranks`` share of every batch,
and DDP averages the gradients with an all-reduce overlapped with the backward pass.

**Timing.** One iteration is one training step (forward, loss, backward with its all-reduce, SGD
update) after a barrier; its sample is the maximum over the ranks (a step is done when its slowest
rank is), timed with CUDA events on GPUs and ``perf_counter`` on the CPU, under the harness's rules
(warm-up, the median's interval, the time budget) decided identically on every rank. Stored:
``metrics["step_s"]`` (median time per step), ``samples_per_s`` (global batch / step time),
``ranks``; the **scaling efficiency** of an N-rank case, ``t₁ / (N · t_N)`` against the 1-rank case of
the same problem (model, global batch, image size, dtype, device) in the same run, is derived
where results are read (:func:`scaling_efficiency`).

**Data.** ``cnn``: the shipped MNIST digits (normalized); ``resnet18``: random normal pictures
``(3, S, S)`` with random labels of 10 classes, from the seed. The ``steps`` global batches live on
each rank's device (no loader: the input pipeline has its own workload), and timed steps cycle
through them.

**Correctness.** From the same initial weights (torch's initialization from the seed) the ranks
train ``steps`` steps; the global loss of each step (the mean of the ranks' losses) must match a
single-process float64 run with the same global batch within :data:`LOSS_TOLERANCE` (1e-4 for the
``cnn``, 1e-2 for ``resnet18``, whose batch normalization amplifies float32 rounding). The single
process accumulates the gradient over the ranks' shares of each batch (each share's mean loss, divided
by the rank count), which is exactly what DDP computes: identical to one pass over the global batch
for a model without batch normalization (``cnn``) and, for ``resnet18``, with the batch statistics
each rank computes over its own share (plain ``BatchNorm2d`` is not synchronized across ranks; torch's
``SyncBatchNorm`` runs on GPUs only). That is why ``ranks`` is part of the problem.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from gpubench.errors import Unavailable, UsageError
from gpubench.harness import HarnessSettings, Measurement
from gpubench.stats import summarize
from gpubench.workloads.base import Param, Workload
from gpubench.workloads.collective import CollectiveMeasurement, session_op
from gpubench.workloads.nets import TRAIN_FORWARDS, forward_flops

#: Largest relative difference of a step's float32 loss from the float64 single-process run, by model. Training
#: a batch-normalized network amplifies rounding: a float32 single-process ResNet-18 run itself differs from the
#: float64 one by up to about 3e-3 after three steps at small per-rank batches; a DDP whose gradients are not
#: averaged misses by far more (tests/test_workload_ddp.py).
LOSS_TOLERANCE = {"cnn": 1e-4, "resnet18": 1e-2}
DTYPES = ("float32",)
CLASSES = 10
MODELS = ("cnn", "resnet18")
#: Default time limit of each step of a case inside the ranks (launch, verification, timing).
DEFAULT_TIMEOUT_S = 600.0


def batches(model: str, seed: int, count: int, global_batch: int, size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The ``count`` global batches ``(samples float32 (G, C, S, S), labels int64 (G,))`` of a case."""
    if model == "cnn":
        from gpubench.mnist_data import load
        from gpubench.workloads.pipeline_data import MNIST_MEAN, MNIST_STD

        data = load("offline", 8000, 2000)
        need = count * global_batch
        if need > len(data.x_train):
            raise UsageError(f"ddp_training: {count} batches of {global_batch} need {need} digits; "
                             f"the shipped set has {len(data.x_train)}")
        x = ((data.x_train[:need].astype(np.float32) / 255 - MNIST_MEAN) / MNIST_STD)[:, None]
        y = data.y_train[:need].astype(np.int64)
    else:
        rng = np.random.default_rng([seed, 21])
        x = rng.standard_normal((count * global_batch, 3, size, size), dtype=np.float32)
        y = rng.integers(0, CLASSES, count * global_batch).astype(np.int64)
    return [(x[i * global_batch:(i + 1) * global_batch], y[i * global_batch:(i + 1) * global_batch])
            for i in range(count)]


def shard(batch: tuple[np.ndarray, np.ndarray], rank: int, ranks: int) -> tuple[np.ndarray, np.ndarray]:
    """Rank ``rank``'s contiguous share of a global batch."""
    x, y = batch
    n = len(y) // ranks
    return x[rank * n:(rank + 1) * n], y[rank * n:(rank + 1) * n]


def single_process_losses(torch: Any, params: dict[str, Any]) -> list[float]:
    """The global loss of each of the ``steps`` steps, trained in one process in float64 (see the module)."""
    from gpubench.workloads import torch_nets as nets

    ranks, steps = params["ranks"], params["steps"]
    torch.manual_seed(params["seed"])
    net = nets.build(torch, params["model"], CLASSES).double()
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=params["lr"])
    losses = []
    for batch in batches(params["model"], params["seed"], steps, params["global_batch"], params.get("image_size", 28)):
        opt.zero_grad(set_to_none=True)
        total = 0.0
        for r in range(ranks):
            x, y = shard(batch, r, ranks)
            loss = torch.nn.functional.cross_entropy(net(torch.from_numpy(x).double()), torch.from_numpy(y))
            (loss / ranks).backward()
            total += loss.item()
        opt.step()
        losses.append(total / ranks)
    return losses


def scaling_efficiency(rows: list[dict[str, Any]]) -> list[float | None]:
    """Scaling efficiency ``t₁ / (N · t_N)`` of each row against the 1-rank row of the same problem in its run.

    ``rows`` are read rows (``run_id``, ``workload``, ``backend``, ``device``, ``dtype``, ``params``,
    ``median_s``); the result is aligned with them: None where a row is not a measured ``ddp_training``
    case or its 1-rank twin was not measured in the same run. Strong scaling: the global batch is the
    same, so perfect scaling divides the step time by N.
    """
    def problem(r: dict[str, Any]) -> tuple:
        p = {k: v for k, v in r["params"].items() if k not in ("ranks", "nodes", "timeout_s")}
        return r.get("run_id"), r["backend"], r["device"], r["dtype"], tuple(sorted(p.items()))

    def measured(r: dict[str, Any]) -> bool:
        return r["workload"] == "ddp_training" and r.get("status", "ok") == "ok" and bool(r.get("median_s"))

    ones = {problem(r): r["median_s"] for r in rows if measured(r) and r["params"].get("ranks") == 1}
    out: list[float | None] = []
    for r in rows:
        t1 = ones.get(problem(r)) if measured(r) else None
        out.append(t1 / (r["params"]["ranks"] * r["median_s"]) if t1 else None)
    return out


class DdpTrainingWorkload(Workload):
    """DistributedDataParallel training steps on N ranks with one global batch (see the module)."""

    name = "ddp_training"
    unit = "gflops"
    description = "DistributedDataParallel training (MNIST CNN, ResNet-18): step time, samples/s, scaling efficiency"
    report_section = "ddp"
    self_timed = True
    version = 1
    params = {
        "model": Param(str, "cnn", minimum=None, choices=MODELS),
        "ranks": Param(int, 1),
        "global_batch": Param(int, 256),
        "image_size": Param(int, 224),
        "steps": Param(int, 3),
        "lr": Param(float, 0.01),
        "seed": Param(int, 0, minimum=0),
        "nodes": Param(int, None, minimum=1, mode=True, match_reference=True, tag="nodes"),
        "timeout_s": Param(float, None, mode=True, tag="timeout_s"),
    }

    def normalize_params(self, params):
        out = super().normalize_params(params)
        if out["model"] == "cnn":
            out.pop("image_size", None)  # digits are 28 × 28
        if out["global_batch"] % out["ranks"]:
            raise UsageError(f"ddp_training: global_batch = {out['global_batch']} does not split over "
                             f"ranks = {out['ranks']}")
        if out["ranks"] % out.get("nodes", 1):
            raise UsageError(f"ddp_training: ranks = {out['ranks']} does not split over nodes = {out['nodes']}")
        if not out["lr"] > 0:
            raise UsageError(f"ddp_training: lr must be positive, got {out['lr']}")
        if not out.get("timeout_s", DEFAULT_TIMEOUT_S) > 0:
            raise UsageError(f"ddp_training: timeout_s must be positive, got {out['timeout_s']}")
        return out

    def side(self, params: dict[str, Any]) -> int:
        return params.get("image_size", 28)

    def make_inputs(self, params, dtype, rng):
        """Nothing large: every rank makes the case's batches from the seed (see :func:`batches`)."""
        if dtype not in DTYPES:
            raise Unavailable(f"ddp_training: {dtype} is not supported (float32)")
        return {"seed": np.array([params["seed"]], dtype=np.int64)}

    def reference(self, inputs, params):
        """The float64 single-process loss of every step (torch on the CPU)."""
        import torch

        return np.asarray(single_process_losses(torch, params), dtype=np.float64)

    def check(self, out, ref, params, dtype):
        """Largest relative difference of a step's global loss (the ranks must agree on it)."""
        tol = LOSS_TOLERANCE[params["model"]]
        out = np.asarray(out, dtype=np.float64)
        if out.ndim != 2 or out.shape[1] != ref.shape[0] or not np.all(np.isfinite(out)):
            return math.inf, tol
        if np.any(out != out[0]):
            return math.inf, tol  # ranks that disagree on the global loss did not train one model
        return float(np.max(np.abs(out[0] - ref) / np.maximum(np.abs(ref), 1e-300))), tol

    def tolerance(self, params, dtype):
        return LOSS_TOLERANCE[params["model"]]

    def flops(self, params):
        """FLOPs of one training step over the global batch (three forward passes per sample)."""
        return TRAIN_FORWARDS * forward_flops(params["model"], self.side(params), CLASSES) * params["global_batch"]

    def memory_bytes(self, params, dtype):
        side = self.side(params)
        channels = 1 if params["model"] == "cnn" else 3
        data = params["steps"] * params["global_batch"] * channels * side * side * 4
        # each rank's copy of the batches and its model; the float64 reference in the worker.
        ranks_here = params["ranks"] // params.get("nodes", 1)
        return int(ranks_here * (data + 512 * 2**20) + 3 * data + 512 * 2**20)

    def describe(self, params):
        size = f" {params['image_size']}px" if "image_size" in params else ""
        return f"{params['model']}{size} batch {params['global_batch']} ranks={params['ranks']}"

    # --- running ------------------------------------------------------------------------------------
    def bind(self, op, params, dtype):
        """The backend's rank group as a one-call op: the call trains ``steps`` verified steps; the ranks time."""
        return session_op(op, params, "ddp_training: no training was run before result()")

    def measurement(self, op, settings: HarnessSettings) -> Measurement:
        """Warm-up and timed steps in the ranks; each sample is a step's maximum over the ranks."""
        start = time.perf_counter()
        params = op.params
        t = op.session.time(settings)
        samples = tuple(max(float(s), 1e-12) for s in t.samples)
        if not samples:
            raise RuntimeError("ddp_training: the ranks returned no samples")
        host = tuple(max(float(s), 1e-12) for s in t.host_samples)
        step = summarize(list(samples)).median
        op.metrics.update({"ranks": params["ranks"], "nodes": params.get("nodes", 1), "step_s": step,
                           "samples_per_s": params["global_batch"] / step,
                           "per_rank_batch": params["global_batch"] // params["ranks"],
                           "iterations": len(samples), "warmup_iterations": t.warmup_calls,
                           "rank_reduction": "max over ranks per step",
                           "verified_losses": [float(v) for v in np.asarray(op.last)[0]]})
        return CollectiveMeasurement(samples, 1, op.session.clock, t.target_met, t.warmup_calls,
                                     time.perf_counter() - start, host_samples=host)

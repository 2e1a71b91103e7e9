"""Model inference: latency per request and throughput against batch size, on real model shapes.

The question after "how much faster is the GPU at a matmul" is "should I serve my model on a CPU
or a GPU?", and the answer turns on the batch: at batch 1 a CPU often answers sooner, at large
batches a GPU serves more. One call of this workload is one request: the forward pass of one of
the models of :mod:`gpubench.workloads.models` (``mlp``, ``cnn``, ``resnet18``, ``gpt``) on a
batch of ``batch`` samples, with random weights drawn from ``seed`` (one shared file per model
and seed, :mod:`gpubench.workloads.models.weights`).

**Timing** (``per_call_latency``): every call is timed on its own, on the host clock, from a
synchronized device to the answer being ready, so a request's latency includes its launch; the
device-event time of the same call is kept beside it where the backend has one
(:mod:`gpubench.latency`). The record's samples are those latencies (its median is the p50); the
export derives p50, p90 and p99, the number of calls they come from, and the throughput in
samples/s (``batch`` × calls / their total time: requests served one after another). The inputs
stay on the device between calls and the output is left there, as in the other workloads: the
request's copies to and from the device are not counted.

**Inputs.** The batch is drawn from ``(seed, model, batch)`` and the dtype only, not from the
case's seed: every backend and device answers the same requests. Images are uniform in [−1, 1),
token ids uniform over the vocabulary. Weights and images are rounded to the case's dtype
(bfloat16, float16) before anything else, so the float64 reference computes with exactly the
numbers the backend holds and its error is the arithmetic's.

**Correctness.** The output is checked against the float64 NumPy forward pass of the same
weights (:mod:`gpubench.workloads.models.forward`), as ‖out − ref‖ / ‖ref‖ over the rows checked.
Every row is checked while the reference costs at most :data:`REFERENCE_FLOPS`; beyond, the
first, the last and rows evenly spread between (at least two): the samples of a batch are
independent in every model (BatchNorm in eval mode), so a wrong row shows wherever it is, and a
ResNet-18 batch of 256 does not cost a float64 forward pass of 930 GFLOP per case. The record's
``metrics["checked_rows"]`` says how many. Tolerances (:data:`TOLERANCE`) are per dtype, an order of
magnitude above the errors measured with torch on a CPU (float32 ~5e-7; float16 2e-4 to 9e-4;
bfloat16 2e-3 to 7e-3, the decoder the largest): a wrong layer gives errors near 1.

FLOPs are the model's forward FLOPs per sample (:class:`~gpubench.workloads.models.ModelSpec`)
times the batch; no physical ceiling is claimed (convolutions may run as Winograd or FFT).
"""

from __future__ import annotations

import math
import zlib
from typing import Any

import numpy as np

from gpubench.errors import UsageError
from gpubench.workloads.base import Param, Workload, random_array, relative_error, round_to_bfloat16
from gpubench.workloads.models import GPT_VOCAB, MODELS, parameter_count

#: Largest float64 forward pass (FLOPs) the reference computes per case: beyond it only some rows are checked.
REFERENCE_FLOPS = 1.5e10

#: Relative error accepted per dtype (of the output over the rows checked).
TOLERANCE = {"float64": 1e-10, "float32": 1e-4, "float16": 1e-2, "bfloat16": 5e-2}

#: Bytes of activations one sample needs at the peak of a forward pass, per model, at 4 bytes per value
#: (a generous estimate, for the memory check before a GPU case).
ACTIVATION_BYTES = {"mlp": 8 * 1024, "cnn": 64 * 1024, "resnet18": 16 * 2**20, "gpt": 8 * 2**20}


def weight_key(name: str) -> str:
    """The key of a weight among a case's inputs (``w:<name>``)."""
    return f"w:{name}"


def case_weights(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The weights among a case's inputs, by name."""
    return {k[2:]: v for k, v in inputs.items() if k.startswith("w:")}


def round_to(dtype: str, value: np.ndarray) -> np.ndarray:
    """``value`` (float32) rounded to the nearest ``dtype`` value, kept in float32 (float32 and float64: as is)."""
    if dtype == "bfloat16":
        return round_to_bfloat16(value)
    if dtype == "float16":
        return value.astype(np.float16).astype(np.float32)
    return value


def check_rows(params: dict[str, Any]) -> np.ndarray:
    """Indices of the batch's rows the reference computes and the check compares (see the module docstring)."""
    batch = params["batch"]
    per_sample = MODELS[params["model"]].forward_flops
    count = max(2, int(REFERENCE_FLOPS // per_sample))
    if batch <= count:
        return np.arange(batch)
    return np.unique(np.linspace(0, batch - 1, count).round().astype(np.int64))


class InferenceWorkload(Workload):
    """The forward pass of a model on a batch; one call is one request, timed alone."""

    name = "inference"
    unit = "gflops"
    description = "model inference (MLP, CNN, ResNet-18, GPT decoder): latency p50/p90/p99 and throughput by batch"
    report_section = "inference"
    per_call_latency = True
    params = {
        "model": Param(str, "mlp", minimum=None, choices=tuple(MODELS)),
        "batch": Param(int, 1),
        "seed": Param(int, 0, minimum=0),
    }

    def normalize_params(self, params: dict[str, Any]) -> dict[str, Any]:
        out = super().normalize_params(params)
        if out["batch"] > 65536:
            raise UsageError(f"inference: batch must be at most 65536, got {out['batch']}")
        return out

    def make_inputs(self, params, dtype, rng):
        """The request's batch and the model's weights (``w:<name>``), rounded to ``dtype``.

        ``rng`` (seeded per case) is deliberately not used: the batch comes from ``(seed, model,
        batch)`` so that every backend and device answers the same requests.
        """
        from gpubench.workloads.models.weights import load_weights

        model, batch, seed = params["model"], params["batch"], params["seed"]
        spec = MODELS[model]
        own = np.random.default_rng([seed, 29, zlib.crc32(model.encode()), batch])
        if spec.tokens:
            x = own.integers(0, GPT_VOCAB, size=(batch, *spec.input_shape), dtype=np.int64)
        else:
            x = random_array(own, (batch, *spec.input_shape), dtype)
        inputs = {"x": x}
        inputs.update({weight_key(k): round_to(dtype, v) for k, v in load_weights(model, seed).items()})
        return inputs

    def reference(self, inputs, params):
        """The float64 NumPy forward pass of the rows :func:`check_rows` picks."""
        from gpubench.workloads.models.forward import forward

        rows = check_rows(params)
        return forward(params["model"], case_weights(inputs), inputs["x"][rows], np.float64)

    def tolerance(self, params, dtype):
        return TOLERANCE.get(dtype, TOLERANCE["float32"])

    def check(self, out, ref, params, dtype):
        """Relative error of the checked rows of ``out`` (the whole batch's output) against the reference rows."""
        tol = self.tolerance(params, dtype)
        out = np.asarray(out)
        expected = (params["batch"], *MODELS[params["model"]].output_shape)
        if out.shape != expected:
            return math.inf, tol
        return relative_error(out[check_rows(params)], ref), tol

    def bind(self, op, params, dtype):
        """Name the batch (the export's throughput) and the weights (the spec hash) on the backend's op."""
        from gpubench.workloads.models.weights import WEIGHTS_VERSION

        op.metrics.setdefault("samples_per_call", params["batch"])
        op.metrics.setdefault("checked_rows", int(len(check_rows(params))))
        op.sources.setdefault(f"weights:{params['model']}", f"seed {params['seed']} v{WEIGHTS_VERSION}")
        return op

    def flops(self, params):
        return MODELS[params["model"]].forward_flops * params["batch"]

    def memory_bytes(self, params, dtype):
        """Weights twice (host and device), the batch's activations, and the reference's float64 rows."""
        model, batch = params["model"], params["batch"]
        spec = MODELS[model]
        sample = int(np.prod(spec.input_shape)) * 8
        rows = len(check_rows(params))
        return int(2 * parameter_count(model) * 4 + batch * (sample + ACTIVATION_BYTES[model])
                   + rows * 2 * ACTIVATION_BYTES[model])

    def describe(self, params):
        return f"{params['model']} batch {params['batch']}"

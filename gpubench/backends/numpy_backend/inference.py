"""Model inference on NumPy: the workload's own forward passes (:mod:`gpubench.workloads.models.forward`).

The same code as the float64 reference, run in the case's dtype (float32: NumPy's BLAS). It
covers every model; it is the reference engine, not a deployment one, and the report never
takes it for "the best CPU engine" when another CPU engine is faster. Peak memory is what
NumPy allocated during one call beyond what it held before, from :mod:`tracemalloc` (NumPy
reports its data buffers to it).
"""

from __future__ import annotations

import tracemalloc

import numpy as np

from gpubench.backends.base import BoundOp
from gpubench.workloads.inference import case_weights
from gpubench.workloads.models.forward import forward


def peak_bytes(fn) -> int:
    """Bytes allocated at the peak of ``fn()`` beyond what was allocated when it started (tracemalloc)."""
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        if started:
            tracemalloc.stop()
    return max(0, peak - before)


def build(backend, spec, params, inputs, device):
    """Bind one forward pass of the case's model on its batch, in the case's dtype."""
    model, dtype = params["model"], np.dtype(spec.dtype)
    weights = {k: np.array(v, dtype=dtype) for k, v in case_weights(inputs).items()}
    x = np.array(inputs["x"])
    holder: list[np.ndarray] = []

    def call():
        holder[:] = [forward(model, weights, x, dtype)]

    metrics = {"peak_memory_bytes": peak_bytes(call),
               "memory_method": "tracemalloc: peak of NumPy's allocations during one call"}
    return BoundOp(call=call, result=lambda: np.array(holder[0]), timer=backend.timer(device), metrics=metrics)

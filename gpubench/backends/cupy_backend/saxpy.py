"""CuPy saxpy variants: a fused CuPy ``ElementwiseKernel``, the raw CUDA kernel of ``kernels/cuda/saxpy.cu``,
and ``graph``: the elementwise kernel captured once into a CUDA graph (stream capture) and replayed
per call, so that small sizes show the kernel's device time rather than the host's launch rate.
"""

from __future__ import annotations

import functools

import numpy as np

from gpubench.backends.base import BoundOp

VARIANTS = ("elementwise", "raw", "graph")
KERNEL = "cuda/saxpy.cu"
THREADS = 256


def unsupported(backend, spec, params, device):
    """The raw kernel exists for float32 and float64 only."""
    if spec.variant == "raw" and spec.dtype not in ("float32", "float64"):
        return f"cupy: the raw saxpy kernel supports float32 and float64, not {spec.dtype}"
    return None


def build(backend, spec, params, inputs, device):
    """Upload x and y; each call updates y in place in one pass."""
    cupy = backend.cupy
    backend.use(device)
    x = backend.upload(inputs["x"], device, spec.dtype)
    y = backend.upload(inputs["y"], device, spec.dtype)
    a = x.dtype.type(params["a"])
    sources: dict[str, str] = {}
    metrics: dict[str, str] = {}
    if spec.variant in ("elementwise", "graph"):
        kernel = cupy.ElementwiseKernel("T x, T a", "T y", "y = a * x + y", "gpubench_saxpy")
        call = functools.partial(kernel, x, a, y)
        if spec.variant == "graph":
            from gpubench.backends.cupy_backend import capture_graph

            graph = capture_graph(cupy, backend.index(device), call)
            # The warm-up call before the capture updated y: start the case from the pristine input.
            y.set(np.ascontiguousarray(inputs["y"], dtype=y.dtype))
            call = graph.launch
            metrics["cuda_graph"] = "one captured ElementwiseKernel launched per call"
    else:
        from gpubench.backends.cupy_backend import kernel_suffix

        module, source = backend.module(device, KERNEL)
        sources[f"kernels/{KERNEL}"] = source
        kernel = module.get_function(f"saxpy_{kernel_suffix(spec.dtype)}")
        n = x.size
        grid = (max(1, min(-(-n // THREADS), 2**31 - 1)),)
        call = functools.partial(kernel, grid, (THREADS,), (np.int64(n), a, x, y))

    def close():
        nonlocal x, y
        x = y = None
        cupy.get_default_memory_pool().free_all_blocks()

    return BoundOp(call=call, result=lambda: backend.download(y), timer=backend.timer(device), close=close,
                   sources=sources, metrics=metrics, device_inputs={"x": x, "y": y}, device_output=y)

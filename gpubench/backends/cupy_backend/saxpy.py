"""CuPy saxpy variants: a fused CuPy ``ElementwiseKernel`` and the raw CUDA kernel of ``kernels/cuda/saxpy.cu``."""

from __future__ import annotations

import functools

import numpy as np

from gpubench.backends.base import BoundOp

VARIANTS = ("elementwise", "raw")
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
    if spec.variant == "elementwise":
        kernel = cupy.ElementwiseKernel("T x, T a", "T y", "y = a * x + y", "gpubench_saxpy")
        call = functools.partial(kernel, x, a, y)
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
                   sources=sources, device_inputs={"x": x, "y": y}, device_output=y)

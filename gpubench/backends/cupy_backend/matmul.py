"""CuPy matmul variants: cuBLAS (``cupy.matmul``), the naive and shared-memory tiled CUDA kernels, and
``graph``: the cuBLAS call captured once into a CUDA graph (stream capture) and replayed per call,
so that a small product's device time is not hidden behind the host's per-call launch cost.

``tf32`` applies to the cuBLAS calls (``cublas`` and ``graph``): CuPy's float32 compute type is
switched to TF32 (the setting the ``CUPY_TF32`` environment variable controls) for the case by
:meth:`~gpubench.backends.cupy_backend.CupyBackend.case_scope`, and restored after it.
"""

from __future__ import annotations

import functools

import numpy as np

from gpubench.backends.base import BoundOp

VARIANTS = ("cublas", "naive", "tiled", "graph")
KERNELS = {"naive": "cuda/matmul_naive.cu", "tiled": "cuda/matmul_tiled.cu"}
#: Thread-block edge: 16 for the naive kernel, TILE (32) for the tiled one (matches the .cu default).
BLOCK = {"naive": 16, "tiled": 32}


def unsupported(backend, spec, params, device):
    """The raw kernels exist for float32 and float64 only and never use tensor cores."""
    if spec.variant in KERNELS:
        if spec.dtype not in ("float32", "float64"):
            return f"cupy: the {spec.variant} CUDA kernel supports float32 and float64, not {spec.dtype}"
        if params.get("tf32"):
            return f"cupy: tf32 applies to the cublas variant, not the {spec.variant} kernel"
    return None


def build(backend, spec, params, inputs, device):
    """Upload A and B, allocate C, and bind the variant's launch."""
    cupy = backend.cupy
    backend.use(device)
    a = backend.upload(inputs["a"], device, spec.dtype)
    b = backend.upload(inputs["b"], device, spec.dtype)
    m, n, k = params["m"], params["n"], params["k"]
    c = cupy.empty((m, n), dtype=a.dtype)
    sources: dict[str, str] = {}
    metrics: dict[str, str] = {}
    if spec.variant in ("cublas", "graph"):
        call = functools.partial(cupy.matmul, a, b, out=c)
        if spec.variant == "graph":
            from gpubench.backends.cupy_backend import capture_graph

            call = capture_graph(cupy, backend.index(device), call).launch
            metrics["cuda_graph"] = "one captured cupy.matmul (cuBLAS) launched per call"
    else:
        relpath = KERNELS[spec.variant]
        module, source = backend.module(device, relpath)
        sources[f"kernels/{relpath}"] = source
        from gpubench.backends.cupy_backend import kernel_suffix

        kernel = module.get_function(f"matmul_{spec.variant}_{kernel_suffix(spec.dtype)}")
        edge = BLOCK[spec.variant]
        grid = (-(-n // edge), -(-m // edge))
        block = (edge, edge)
        args = (a, b, c, np.int32(m), np.int32(n), np.int32(k))
        call = functools.partial(kernel, grid, block, args)

    def close():
        nonlocal a, b, c
        a = b = c = None
        cupy.get_default_memory_pool().free_all_blocks()

    return BoundOp(call=call, result=lambda: backend.download(c), timer=backend.timer(device), close=close,
                   sources=sources, metrics=metrics, device_inputs={"a": a, "b": b}, device_output=c)

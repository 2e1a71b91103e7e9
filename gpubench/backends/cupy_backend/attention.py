"""CuPy attention: cuBLAS batched products plus gpubench's CUDA softmax kernel.

The host algorithm is the NumPy backend's :func:`~gpubench.backends.numpy_backend.attention.bind_attention`
run on CuPy arrays (``cupy.matmul`` is cuBLAS), with the softmax step replaced by the raw kernel
of ``kernels/cuda/attention_softmax.cu`` (one thread block per score row, the causal mask applied
in the kernel). :func:`kernel_softmax` packs the launch; tests run it with NumPy standing in for
CuPy and a NumPy model of the kernel, so the host side is checked without a GPU.

Score blocks are larger than the NumPy backend's (``BLOCK_BYTES``): a GPU needs large batched
products to fill its SMs. Memory is the peak of the bytes CuPy's memory pool handed out while
the op was built and during one call (a :class:`cupy.cuda.MemoryHook`), beyond the inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from gpubench.backends.base import BoundOp
from gpubench.backends.numpy_backend.attention import bind_attention, stack_result

KERNEL = "cuda/attention_softmax.cu"
#: ``extern "C"`` kernel suffix per dtype (CuPy has no bfloat16).
SUFFIX = {"float32": "f32", "float16": "f16", "float64": "f64"}
#: Threads per row (a multiple of 32).
THREADS = 256
#: Largest score block (bytes) per cuBLAS product.
BLOCK_BYTES = 256 * 2**20


def kernel_softmax(kernel: Callable[..., Any], scalar: type) -> Callable[[Any, float, bool, int], None]:
    """The ``softmax`` step of :func:`bind_attention` as a launch of ``kernel`` (``grid, block, args``).

    ``scalar`` is the kernel's type of ``scale`` (``np.float32``, or ``np.float64`` for the f64 kernel).
    """

    def softmax(scores: Any, scale: float, causal: bool, q0: int) -> None:
        heads, rows, n = scores.shape
        kernel((heads * rows,), (THREADS,),
               (scores, np.int64(n), np.int32(rows), np.int64(q0), np.int32(bool(causal)), scalar(scale)))

    return softmax


class PeakTracker:
    """Current and peak bytes handed out by a memory pool, from its malloc and free callbacks."""

    def __init__(self) -> None:
        self.current = 0
        self.peak = 0

    def malloc(self, mem_size: int, mem_ptr: int) -> None:
        if mem_ptr:
            self.current += mem_size
            self.peak = max(self.peak, self.current)

    def free(self, mem_size: int) -> None:
        self.current -= mem_size


def pool_hook(cupy, tracker: PeakTracker):
    """A :class:`cupy.cuda.MemoryHook` that feeds ``tracker``."""

    class _Hook(cupy.cuda.MemoryHook):
        name = "gpubench-peak"

        def malloc_postprocess(self, **kw):
            tracker.malloc(kw["mem_size"], kw["mem_ptr"])

        def free_postprocess(self, **kw):
            tracker.free(kw["mem_size"])

    return _Hook()


def build(backend, spec, params, inputs, device):
    """Upload Q, K, V (and dO), bind the blocked cuBLAS + softmax-kernel attention, measure one call's memory."""
    cupy = backend.cupy
    backend.use(device)
    module, source = backend.module(device, KERNEL)
    softmax = kernel_softmax(module.get_function(f"attention_softmax_{SUFFIX[spec.dtype]}"),
                             np.float64 if spec.dtype == "float64" else np.float32)
    arrays = {name: backend.upload(x, device, spec.dtype) for name, x in inputs.items()}
    tracker = PeakTracker()
    with pool_hook(cupy, tracker):
        call, outputs = bind_attention(cupy, arrays["q"], arrays["k"], arrays["v"], params["causal"], softmax,
                                       BLOCK_BYTES // arrays["q"].itemsize, arrays.get("do"))
        call()
        backend.synchronize(device)
    metrics = {"peak_memory_bytes": tracker.peak,
               "memory_method": "CuPy memory pool (MemoryHook): peak of the bytes handed out beyond the inputs "
                                "while building the op and during one call",
               "algorithm": "cublas+softmax kernel"}

    def close():
        arrays.clear()
        outputs.clear()
        cupy.get_default_memory_pool().free_all_blocks()

    return BoundOp(call=call, result=lambda: backend.download(stack_result(cupy, outputs)),
                   timer=backend.timer(device), close=close, sources={f"kernels/{KERNEL}": source}, metrics=metrics)

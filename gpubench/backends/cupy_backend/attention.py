"""CuPy attention: cuBLAS batched products plus gpubench's CUDA softmax kernel.

The host algorithm is the NumPy backend's :func:`~gpubench.backends.numpy_backend.attention.bind_attention`
run on CuPy arrays (``cupy.matmul`` is cuBLAS), with the softmax step replaced by the raw kernel
of ``kernels/cuda/attention_softmax.cu`` (one thread block per score row, the causal mask applied
in the kernel). :func:`kernel_softmax` packs the launch; tests run it with NumPy standing in for
CuPy and a NumPy model of the kernel, so the host side is checked without a GPU.

**float16 products.** CuPy's ``matmul`` of 3-D (batched) float16 arrays converts both operands to
float32, runs a float32 ``cublasGemmStridedBatchedEx`` and converts the product back (CuPy 14's
``_routines_linalg.matmul``: ``if dtype.char == 'e': dtype = float32``); only its 2-D path keeps
half precision (``cublasGemmEx`` on ``CUDA_R_16F``). So float16 attention here calls
``cublasGemmStridedBatchedEx`` itself (:func:`half_matmul`): float16 operands and product, float32
accumulation (``CUBLAS_COMPUTE_32F``), the tensor-core half GEMM that torch's float16 ``bmm`` runs.
The record's ``gemm`` metric names what ran.

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


def _matrix_layout(x: Any) -> tuple[bool, int, int]:
    """``(row_major, ld, batch_stride)`` in elements of a 3-D operand whose matrices have unit stride in one of
    their two dimensions (a slice of a contiguous array or its transpose); ValueError otherwise."""
    g, p, q = x.shape
    item = x.itemsize
    s0, sp, sq = (st // item for st in x.strides)
    if sq == 1 or q == 1:
        return True, sp if p > 1 else max(q, 1), s0 if g > 1 else 0
    if sp == 1 or p == 1:
        return False, sq if q > 1 else max(p, 1), s0 if g > 1 else 0
    raise ValueError(f"half_matmul: operand with strides {x.strides} has no unit stride in its matrices")


def half_matmul(cublas: Any, r_16f: int, handle: int, pointer: Callable[[Any], int] = lambda x: x.data.ptr):
    """``matmul(a, b, out)`` for float16 G×M×K by G×K×N arrays: one ``cublasGemmStridedBatchedEx``.

    float16 storage, float32 accumulation (``CUBLAS_COMPUTE_32F``). ``cublas`` is CuPy's cuBLAS module
    (``cupy.cuda.cublas``), ``r_16f`` CUDA's ``CUDA_R_16F``, ``handle`` the device's cuBLAS handle;
    CuPy's wrapper binds it to the current stream on every call. cuBLAS is column-major, so the row-major
    product C = A·B is issued as Cᵀ = Bᵀ·Aᵀ, each operand transposed or not by its layout.
    """
    one, zero = np.array(1.0, np.float32), np.array(0.0, np.float32)  # CUBLAS_COMPUTE_32F scales in float
    alpha, beta = one.ctypes.data, zero.ctypes.data
    gemm = cublas.gemmStridedBatchedEx
    compute, algo = cublas.CUBLAS_COMPUTE_32F, cublas.CUBLAS_GEMM_DEFAULT

    def matmul(a: Any, b: Any, out: Any) -> Any:
        g, m, k = a.shape
        n = b.shape[2]
        if b.shape != (g, k, n) or out.shape != (g, m, n):
            raise ValueError(f"half_matmul: shapes {a.shape} · {b.shape} → {out.shape}")
        a_rows, lda, sa = _matrix_layout(a)
        b_rows, ldb, sb = _matrix_layout(b)
        c_rows, ldc, sc = _matrix_layout(out)
        if not c_rows:
            raise ValueError("half_matmul: the product must be row-major")
        # cuBLAS's A is our B (its column-major view of a row-major B is Bᵀ: no transpose), its B is our A.
        gemm(handle, 0 if b_rows else 1, 0 if a_rows else 1, n, m, k, alpha,
             pointer(b), r_16f, ldb, sb, pointer(a), r_16f, lda, sa, beta,
             pointer(out), r_16f, ldc, sc, g, compute, algo)
        return out

    matmul.keep = (one, zero)  # the scalars live as long as the function
    return matmul


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
    if spec.dtype == "float16":
        matmul = half_matmul(cupy.cuda.cublas, cupy.cuda.runtime.CUDA_R_16F, cupy.cuda.device.get_cublas_handle())
        gemm = "cublasGemmStridedBatchedEx: float16 operands and product, float32 accumulation (CUBLAS_COMPUTE_32F)"
    else:
        matmul = None
        gemm = f"cupy.matmul (cublasGemmStridedBatchedEx in {spec.dtype})"
    tracker = PeakTracker()
    with pool_hook(cupy, tracker):
        call, outputs = bind_attention(cupy, arrays["q"], arrays["k"], arrays["v"], params["causal"], softmax,
                                       BLOCK_BYTES // arrays["q"].itemsize, arrays.get("do"), matmul)
        call()
        backend.synchronize(device)
    metrics = {"peak_memory_bytes": tracker.peak,
               "memory_method": "CuPy memory pool (MemoryHook): peak of the bytes handed out beyond the inputs "
                                "while building the op and during one call",
               "algorithm": "cublas+softmax kernel", "gemm": gemm}

    def close():
        arrays.clear()
        outputs.clear()
        cupy.get_default_memory_pool().free_all_blocks()

    return BoundOp(call=call, result=lambda: backend.download(stack_result(cupy, outputs)),
                   timer=backend.timer(device), close=close, sources={f"kernels/{KERNEL}": source}, metrics=metrics)

"""NumPy attention: batched BLAS products over blocks of queries, a stable softmax, the causal mask.

:func:`bind_attention` is the algorithm, written against the NumPy API only (``xp``) with the
softmax passed in, so the CuPy backend runs the same host code on cuBLAS with its CUDA softmax
kernel. Per block of heads and queries it computes the scores ``Q_blk·Kᵀ`` into one reused
buffer, turns them into probabilities in place (``softmax``), and multiplies by V straight into
the output; with ``causal`` a block of queries ending at row ``i1`` reads only keys ``[0, i1)``
(the rest are masked anyway), which halves the work as the FLOP count assumes. The backward
pass runs block by block right after the forward one, while P is still in the buffer:
``dV += Pᵀ·dO``, ``dP = dO·Vᵀ``, ``dS = P∘(dP − rowsum(dO∘O))``, ``dQ = dS·K/√D``,
``dK += dSᵀ·Q/√D`` — four products, no recomputation.

The memory the case needed beyond its inputs (the op's outputs and score blocks, and whatever one
call allocates) is measured with :mod:`tracemalloc`, which NumPy reports its array allocations to.
"""

from __future__ import annotations

import math
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np

from gpubench.backends.base import BoundOp

#: Largest score block (bytes) of the NumPy backend: a few MiB keeps the exponentials near the caches.
BLOCK_BYTES = 16 * 2**20

Softmax = Callable[[Any, float, bool, int], None]


def block_shape(bh: int, s: int, elems: int) -> tuple[int, int]:
    """``(heads, rows)`` of a score block of at most ``elems`` elements (at least one row of one head)."""
    rows = max(1, min(s, elems // s))
    heads = max(1, min(bh, elems // (rows * s)))
    return heads, rows


def numpy_softmax(scores: np.ndarray, scale: float, causal: bool, q0: int) -> None:
    """Scaled, row-wise softmax of a G×R×n score block, in place; stable (the row maximum is subtracted).

    Row ``r`` holds query ``q0 + r`` against keys ``0..n-1``; with ``causal`` keys after the
    query get probability 0. Only the block's last R keys can be masked (keys before ``q0`` are
    visible to every row), so the mask touches an R×R corner.
    """
    _, rows, n = scores.shape
    scores *= scale
    if causal:
        corner = scores[:, :, q0:n]
        corner[:, np.triu(np.ones((rows, n - q0), dtype=bool), 1)] = -np.inf
    scores -= scores.max(axis=2, keepdims=True)
    np.exp(scores, out=scores)
    scores /= scores.sum(axis=2, keepdims=True)


def bind_attention(xp: Any, q: Any, k: Any, v: Any, causal: bool, softmax: Softmax, block_elems: int,
                   do: Any = None, matmul: Callable[..., Any] | None = None) -> tuple[Callable[[], None], list[Any]]:
    """Return ``(call, outputs)``: blocked attention of B×H×S×D arrays, and the arrays it writes.

    ``outputs`` is ``[O]``, or ``[O, dQ, dK, dV]`` when ``do`` (the upstream gradient) is given.
    ``softmax(scores, scale, causal, q0)`` turns a contiguous G×R×n block of raw scores into
    probabilities in place. ``block_elems`` bounds the elements of one score block. ``matmul(a, b,
    out=)`` runs every batched product (default ``xp.matmul``; CuPy's float16 passes its own).
    """
    b, h, s, d = q.shape
    bh = b * h
    dtype = q.dtype
    scale = 1.0 / math.sqrt(d)
    q3, k3, v3 = (x.reshape(bh, s, d) for x in (q, k, v))
    kt, vt = k3.transpose(0, 2, 1), v3.transpose(0, 2, 1)
    heads, rows = block_shape(bh, s, block_elems)
    out = xp.empty((bh, s, d), dtype)
    scores_buf = xp.empty(heads * rows * s, dtype)
    backward = do is not None
    if backward:
        do3 = do.reshape(bh, s, d)
        dq, dk, dv = (xp.empty((bh, s, d), dtype) for _ in range(3))
        dp_buf = xp.empty(heads * rows * s, dtype)
        part = xp.empty((heads, s, d), dtype)  # dK and dV contributions of one block
        prod = xp.empty((heads, rows, d), dtype)
        delta = xp.empty((heads, rows, 1), dtype)
    blocks = [(h0, min(bh, h0 + heads), i0, min(s, i0 + rows))
              for h0 in range(0, bh, heads) for i0 in range(0, s, rows)]
    matmul = matmul or xp.matmul

    def call() -> None:
        if backward:
            dk.fill(0)
            dv.fill(0)
        for h0, h1, i0, i1 in blocks:
            g, r = h1 - h0, i1 - i0
            n = i1 if causal else s  # keys a causal block can see
            p = scores_buf[: g * r * n].reshape(g, r, n)
            matmul(q3[h0:h1, i0:i1], kt[h0:h1, :, :n], out=p)
            softmax(p, scale, causal, i0)
            o = out[h0:h1, i0:i1]
            matmul(p, v3[h0:h1, :n], out=o)
            if not backward:
                continue
            grad = do3[h0:h1, i0:i1]
            pt = p.transpose(0, 2, 1)
            matmul(pt, grad, out=part[:g, :n])
            dv[h0:h1, :n] += part[:g, :n]
            ds = dp_buf[: g * r * n].reshape(g, r, n)
            matmul(grad, vt[h0:h1, :, :n], out=ds)  # dP
            xp.multiply(grad, o, out=prod[:g, :r])
            xp.sum(prod[:g, :r], axis=2, keepdims=True, out=delta[:g, :r])
            ds -= delta[:g, :r]
            ds *= p  # dS; masked entries have p = 0
            dq_blk = dq[h0:h1, i0:i1]
            matmul(ds, k3[h0:h1, :n], out=dq_blk)
            dq_blk *= scale
            matmul(ds.transpose(0, 2, 1), q3[h0:h1, i0:i1], out=part[:g, :n])
            part[:g, :n] *= scale
            dk[h0:h1, :n] += part[:g, :n]

    outputs = [out.reshape(b, h, s, d)]
    if backward:
        outputs += [x.reshape(b, h, s, d) for x in (dq, dk, dv)]
    return call, outputs


def stack_result(xp: Any, outputs: list[Any]) -> Any:
    """The op's result: O alone, or O, dQ, dK, dV stacked on a new first axis."""
    return outputs[0].copy() if len(outputs) == 1 else xp.stack(outputs)


def build(backend, spec, params, inputs, device):
    """Bind the blocked attention on NumPy arrays; measure the memory its buffers and one call need."""
    arrays = {name: np.ascontiguousarray(x) for name, x in inputs.items()}  # read only, never written
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        start, _ = tracemalloc.get_traced_memory()
        call, outputs = bind_attention(np, arrays["q"], arrays["k"], arrays["v"], params["causal"], numpy_softmax,
                                       BLOCK_BYTES // arrays["q"].itemsize, arrays.get("do"))
        call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        if not tracing:
            tracemalloc.stop()
    metrics = {"peak_memory_bytes": int(peak - start),
               "memory_method": "tracemalloc: NumPy allocations beyond the inputs while building the op "
                                "(outputs, score blocks) and during one call"}
    return BoundOp(call=call, result=lambda: stack_result(np, outputs), metrics=metrics)

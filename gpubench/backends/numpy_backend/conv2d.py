"""NumPy conv2d: im2col into a preallocated column buffer, then one BLAS product per image block.

NCHW: columns C·R·S × P·Q per image, ``W(K×CRS) @ cols`` lands straight in the K×P×Q output.
NHWC: columns P·Q × R·S·C per image, ``cols @ W(RSC×K)`` lands straight in the P×Q×K output.
The padded input is refreshed inside every call (its zero border stays), so the timed call does
all the work a convolution does. :func:`bind_im2col` is written against the NumPy API only, so
the CuPy backend runs the same algorithm on cuBLAS.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from gpubench.backends.base import BoundOp
from gpubench.workloads.conv2d import block_images, conv_shapes


def bind_im2col(xp: Any, x: Any, w_kcrs: Any, params: dict[str, Any]) -> tuple[Callable[[], None], Any]:
    """Return ``(call, out)``: a blocked im2col + ``xp.matmul`` convolution of ``x`` into ``out``.

    ``xp`` is ``numpy`` or a module with its API (``cupy``); ``x`` is N×C×H×W or N×H×W×C as
    ``params['layout']`` says, ``w_kcrs`` is K×C×R×S; both already live where ``xp`` computes.
    """
    n, c, h, w, k, r, s, p, q, stride = conv_shapes(params)
    pad = params["padding"]
    dtype = x.dtype
    nb = block_images(c * r * s * p * q * dtype.itemsize, n)
    sliding = xp.lib.stride_tricks.sliding_window_view
    hs, ws = slice(0, (p - 1) * stride + 1, stride), slice(0, (q - 1) * stride + 1, stride)
    copyto, matmul = xp.copyto, xp.matmul
    blocks = []
    if params["layout"] == "NCHW":
        xp_pad = xp.zeros((n, c, h + 2 * pad, w + 2 * pad), dtype)
        interior = xp_pad[:, :, pad:pad + h, pad:pad + w]
        wmat = xp.ascontiguousarray(w_kcrs.reshape(k, c * r * s))
        out = xp.empty((n, k, p, q), dtype)
        cols = xp.empty((nb, c, r, s, p, q), dtype)
        for n0 in range(0, n, nb):
            m = min(nb, n - n0)
            view = sliding(xp_pad[n0:n0 + m], (r, s), axis=(2, 3))[:, :, hs, ws].transpose(0, 1, 4, 5, 2, 3)
            blocks.append((view, cols[:m], wmat, cols[:m].reshape(m, c * r * s, p * q),
                           out[n0:n0 + m].reshape(m, k, p * q)))
    else:
        xp_pad = xp.zeros((n, h + 2 * pad, w + 2 * pad, c), dtype)
        interior = xp_pad[:, pad:pad + h, pad:pad + w, :]
        wmat = xp.ascontiguousarray(w_kcrs.transpose(2, 3, 1, 0).reshape(r * s * c, k))
        out = xp.empty((n, p, q, k), dtype)
        cols = xp.empty((nb, p, q, r, s, c), dtype)
        for n0 in range(0, n, nb):
            m = min(nb, n - n0)
            # sliding_window_view puts the window axes last: N,P',Q',C,R,S -> N,P,Q,R,S,C
            view = sliding(xp_pad[n0:n0 + m], (r, s), axis=(1, 2))[:, hs, ws].transpose(0, 1, 2, 4, 5, 3)
            blocks.append((view, cols[:m], cols[:m].reshape(m * p * q, r * s * c), wmat,
                           out[n0:n0 + m].reshape(m * p * q, k)))

    def call() -> None:
        copyto(interior, x)
        for view, col, left, right, dst in blocks:
            copyto(col, view)
            matmul(left, right, out=dst)

    return call, out


def build(backend, spec, params, inputs, device):
    """Bind the blocked im2col + ``np.matmul`` convolution."""
    x = np.ascontiguousarray(inputs["x"])
    call, out = bind_im2col(np, x, np.ascontiguousarray(inputs["w"]), params)
    return BoundOp(call=call, result=lambda: out.copy(), device_inputs={"x": x}, device_output=out)

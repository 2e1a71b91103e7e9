"""Forward 2-D convolution, the layer that made GPUs the deep-learning workhorse.

Shapes follow the cuDNN names: input N×C×H×W, K filters of C×R×S, stride and zero padding
(the same on both spatial axes), output N×K×P×Q with ``P = (H + 2·padding − R) // stride + 1``.
``layout`` says how the input and the output are stored: ``NCHW`` (PyTorch's default) or
``NHWC`` (TensorFlow's default, and channels-last in PyTorch). The filters are always given
as K×C×R×S; a backend reorders them once when it builds the case (filters are model weights
that stay on the device, which is also why ``include_transfer`` moves only the activations).

The float64 reference is im2col plus one BLAS product per block of images (no Python loop over
pixels), blocked so that its column buffer stays small even for training-size batches.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpubench.errors import UsageError
from gpubench.workloads.base import Param, Workload, host_dtype, random_array

LAYOUTS = ("NCHW", "NHWC")

#: Largest im2col block (bytes) the reference and the NumPy backend allocate at a time.
COLUMN_BLOCK_BYTES = 64 * 2**20


def output_size(size: int, window: int, stride: int, padding: int) -> int:
    """Output extent of one spatial axis (``P`` from ``H``, or ``Q`` from ``W``)."""
    return (size + 2 * padding - window) // stride + 1


def conv_shapes(params: dict[str, Any]) -> tuple[int, int, int, int, int, int, int, int, int, int]:
    """``(N, C, H, W, K, R, S, P, Q, stride)`` from normalized parameters."""
    n, c, h, w = params["n"], params["c"], params["h"], params["w"]
    k, r, s = params["k"], params["r"], params["s"]
    stride, pad = params["stride"], params["padding"]
    return n, c, h, w, k, r, s, output_size(h, r, stride, pad), output_size(w, s, stride, pad), stride


def im2col_nchw(xp: np.ndarray, r: int, s: int, stride: int, p: int, q: int) -> np.ndarray:
    """Strided view of the windows of a padded N×C×H×W block as N×C×R×S×P×Q (no copy)."""
    windows = np.lib.stride_tricks.sliding_window_view(xp, (r, s), axis=(2, 3))  # N,C,H',W',R,S
    windows = windows[:, :, : (p - 1) * stride + 1 : stride, : (q - 1) * stride + 1 : stride]
    return windows.transpose(0, 1, 4, 5, 2, 3)


def block_images(per_image_bytes: int, n: int, limit: int = COLUMN_BLOCK_BYTES) -> int:
    """How many images one im2col block holds (at least one)."""
    return max(1, min(n, limit // max(per_image_bytes, 1)))


def conv2d_reference(x_nchw: np.ndarray, w_kcrs: np.ndarray, stride: int, padding: int) -> np.ndarray:
    """Convolution (cross-correlation, as every framework defines it) in float64, N×K×P×Q."""
    x = x_nchw.astype(np.float64, copy=False)
    wt = w_kcrs.astype(np.float64, copy=False)
    n, c, h, w = x.shape
    k, _, r, s = wt.shape
    p, q = output_size(h, r, stride, padding), output_size(w, s, stride, padding)
    out = np.empty((n, k, p, q))
    wmat = wt.reshape(k, c * r * s)
    nb = block_images(c * r * s * p * q * 8, n)
    for n0 in range(0, n, nb):
        xp = np.pad(x[n0:n0 + nb], ((0, 0), (0, 0), (padding, padding), (padding, padding)))
        cols = im2col_nchw(xp, r, s, stride, p, q).reshape(xp.shape[0], c * r * s, p * q)
        out[n0:n0 + nb] = np.matmul(wmat, cols).reshape(-1, k, p, q)
    return out


class Conv2dWorkload(Workload):
    """Forward convolution ``y = x ⋆ w``; FLOPs = 2·N·K·C·R·S·P·Q; tolerance scaled by √(C·R·S)."""

    name = "conv2d"
    unit = "gflops"
    description = "forward 2-D convolution (N, C, H, W, K, R, S, stride, padding)"
    params = {
        "n": Param(int),
        "c": Param(int),
        "h": Param(int),
        "w": Param(int),
        "k": Param(int),
        "r": Param(int),
        "s": Param(int),
        "stride": Param(int, default=1),
        "padding": Param(int, default=0, minimum=0),
        "layout": Param(str, default="NCHW", minimum=None, choices=LAYOUTS, mode=True, match_reference=True),
        "include_transfer": Param(bool, minimum=None, mode=True, tag="+copies"),
    }
    #: ``layout`` arranges the input and the output: NHWC and NCHW cases have references of their own.
    answer_modes = ("layout",)

    def normalize_params(self, params: dict[str, Any]) -> dict[str, Any]:
        params = dict(params)
        if isinstance(params.get("layout"), str):
            params["layout"] = params["layout"].upper()
        missing = [key for key in ("n", "c", "h", "w", "k", "r", "s") if key not in params]
        if missing:
            raise UsageError(f"conv2d: missing parameter {', '.join(missing)}")
        out = super().normalize_params(params)
        for size, window, axis in (("h", "r", "height"), ("w", "s", "width")):
            if output_size(out[size], out[window], out["stride"], out["padding"]) < 1:
                raise UsageError(f"conv2d: filter {window}={out[window]} is larger than the padded {axis} "
                                 f"{size}={out[size]} + 2·padding={2 * out['padding']}")
        return out

    def make_inputs(self, params, dtype, rng):
        n, c, h, w, k, r, s, _, _, _ = conv_shapes(params)
        x_shape = (n, c, h, w) if params["layout"] == "NCHW" else (n, h, w, c)
        return {"x": random_array(rng, x_shape, dtype), "w": random_array(rng, (k, c, r, s), dtype)}

    def reference(self, inputs, params):
        x = inputs["x"] if params["layout"] == "NCHW" else inputs["x"].transpose(0, 3, 1, 2)
        out = conv2d_reference(x, inputs["w"], params["stride"], params["padding"])
        return out if params["layout"] == "NCHW" else np.ascontiguousarray(out.transpose(0, 2, 3, 1))

    def flops(self, params):
        n, c, _, _, k, r, s, p, q, _ = conv_shapes(params)
        return 2.0 * n * k * c * r * s * p * q

    def _elements(self, params) -> int:
        n, c, h, w, k, r, s, p, q, _ = conv_shapes(params)
        return n * c * h * w + k * c * r * s + n * k * p * q

    def bytes_moved(self, params, dtype):
        itemsize = 2 if dtype == "bfloat16" else host_dtype(dtype).itemsize
        return float(self._elements(params) * itemsize)

    def memory_bytes(self, params, dtype):
        n, c, h, w, k, r, s, p, q, _ = conv_shapes(params)
        pad = params["padding"]
        elems = self._elements(params)
        padded = n * c * (h + 2 * pad) * (w + 2 * pad)
        # inputs and output in the host dtype; float64 copies for the reference (padded input,
        # output) and for the check; plus the reference's and the NumPy backend's column blocks.
        columns = 2 * min(n * c * r * s * p * q * 8, COLUMN_BLOCK_BYTES + c * r * s * p * q * 8)
        return int(elems * host_dtype(dtype).itemsize + 2 * elems * 8 + padded * 8 + columns)

    def device_bytes(self, params, dtype):
        """Input, filter and output on the device, twice (a layout or staging copy); the NumPy backend's
        column blocks are counted in :meth:`memory_bytes`."""
        return int(2 * self._elements(params) * host_dtype(dtype).itemsize)

    def accumulation_length(self, params):
        return params["c"] * params["r"] * params["s"]

    def describe(self, params):
        n, c, h, w, k, r, s, _, _, stride = conv_shapes(params)
        text = f"{n}×{c}×{h}×{w} k{k} {r}×{s}"
        if stride != 1:
            text += f" /{stride}"
        if params["padding"]:
            text += f" pad{params['padding']}"
        return text

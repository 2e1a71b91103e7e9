"""JAX conv2d: ``jax.lax.conv_general_dilated`` compiled by XLA (oneDNN/Eigen on the CPU, cuDNN on CUDA).

The layout is told to XLA through dimension numbers: ``NCHW`` input with ``OIHW`` filters, or
``NHWC`` input with ``HWIO`` filters (reordered once, at build time, from the workload's K×C×R×S),
the output in the input's layout. float32 runs at ``Precision.HIGHEST`` (no TF32).
"""

from __future__ import annotations

import numpy as np

from gpubench.backends.base import BoundOp
from gpubench.backends.jax_backend import DeviceSlot

DIMENSIONS = {"NCHW": ("NCHW", "OIHW", "NCHW"), "NHWC": ("NHWC", "HWIO", "NHWC")}


def build(backend, spec, params, inputs, device):
    """Compile the convolution for the case's shapes and layout; bind one call of it."""
    lax = backend.jax.lax
    layout = params["layout"]
    stride, pad = params["stride"], params["padding"]
    w_host = inputs["w"] if layout == "NCHW" else np.ascontiguousarray(inputs["w"].transpose(2, 3, 1, 0))
    x = DeviceSlot(backend.upload(inputs["x"], device, spec.dtype), spec.dtype)
    w = backend.upload(w_host, device, spec.dtype)
    dims = DIMENSIONS[layout]
    precision = backend.precision(spec.dtype)

    def conv(xv, wv):
        return lax.conv_general_dilated(xv, wv, window_strides=(stride, stride), padding=[(pad, pad), (pad, pad)],
                                        dimension_numbers=dims, precision=precision)

    convolve = backend.compile(conv, x.value, w)
    out = DeviceSlot(None)
    keep = backend.keep

    def call():
        out.value = keep(device, convolve(x.value, w))

    return BoundOp(call=call, result=lambda: backend.download(out), timer=backend.timer(device),
                   device_inputs={"x": x}, device_output=lambda: out.value,
                   metrics={"dimension_numbers": ",".join(dims)})

"""CuPy conv2d: im2col plus cuBLAS, the same blocked algorithm as the NumPy backend.

CuPy 14 no longer ships its cuDNN wrapper (``cupy.cudnn`` was removed), so the convolution is
im2col (a strided-window copy on the GPU) followed by one cuBLAS product per image block. For
cuDNN's own kernels, compare with the torch backend on the same GPU.
"""

from __future__ import annotations

from gpubench.backends.base import BoundOp
from gpubench.backends.numpy_backend.conv2d import bind_im2col


def build(backend, spec, params, inputs, device):
    """Upload the input and filters, bind the im2col + ``cupy.matmul`` convolution."""
    cupy = backend.cupy
    backend.use(device)
    x = backend.upload(inputs["x"], device, spec.dtype)
    w = backend.upload(inputs["w"], device, spec.dtype)
    call, out = bind_im2col(cupy, x, w, params)
    return BoundOp(call=call, result=lambda: backend.download(out), timer=backend.timer(device),
                   device_inputs={"x": x}, device_output=out, metrics={"algorithm": "im2col+cublas"})

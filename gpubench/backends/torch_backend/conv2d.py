"""torch conv2d: ``torch.nn.functional.conv2d`` (cuDNN on CUDA with its autotuner on; oneDNN on CPU).

``NHWC`` runs in PyTorch's channels-last memory format: the N×H×W×C host input is uploaded as
is and viewed as a logical N×C×H×W tensor with channels-last strides (no copy), the filters are
converted to channels-last once at build time, and the output comes back as N×P×Q×K.
"""

from __future__ import annotations

from gpubench.backends.base import BoundOp


def build(backend, spec, params, inputs, device):
    """Bind ``F.conv2d(x, w, stride, padding)`` on the device."""
    torch = backend.torch
    if device.kind == "cuda":
        # Let cuDNN time its algorithms on the first calls (the harness warm-up absorbs that)
        # and keep float32 convolutions in true float32, as the reference checks them.
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = False
    conv = torch.nn.functional.conv2d
    stride, padding = params["stride"], params["padding"]
    x_dev = backend.upload(inputs["x"], device, spec.dtype)
    w = backend.upload(inputs["w"], device, spec.dtype)
    nhwc = params["layout"] == "NHWC"
    if nhwc:
        x = x_dev.permute(0, 3, 1, 2)  # logical NCHW, channels-last strides, same storage
        w = w.contiguous(memory_format=torch.channels_last)
    else:
        x = x_dev
    # The tensors do not require grad, so no autograd graph is recorded (no_grad would only add overhead).
    holder = [None]

    def call():
        holder[0] = conv(x, w, None, stride, padding)

    def output():
        y = holder[0]
        return y.permute(0, 2, 3, 1) if nhwc and y is not None else y

    return BoundOp(call=call, result=lambda: backend.download(output().contiguous()), timer=backend.timer(device),
                   device_inputs={"x": x_dev}, device_output=output,
                   metrics={"memory_format": "channels_last" if nhwc else "contiguous"})

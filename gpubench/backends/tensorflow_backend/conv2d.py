"""TensorFlow conv2d: ``tf.nn.conv2d`` in a traced ``tf.function`` (oneDNN on CPU, cuDNN on GPU).

TensorFlow's CPU kernel supports NHWC only, so ``layout = "NCHW"`` runs on GPUs and is skipped
on the CPU with that reason. Filters are reordered once to TensorFlow's R×S×C×K (HWIO). The
input lives in a ``tf.Variable`` so ``include_transfer`` can refill it from host memory.
"""

from __future__ import annotations

from gpubench.backends.base import BoundOp


def unsupported(backend, spec, params, device):
    """TensorFlow's CPU Conv2D kernel is NHWC-only."""
    if params["layout"] == "NCHW" and device.kind != "cuda":
        return "tensorflow: Conv2D supports only layout NHWC on the CPU"
    return None


def build(backend, spec, params, inputs, device):
    """Trace the convolution once; each call runs the graph and returns a new device tensor."""
    tf = backend.tf
    # TensorFlow enables TF32 by default on Ampere+ GPUs: float32 cases are checked as float32
    # (TensorflowBackend.case_scope restores the switch after the case).
    tf.config.experimental.enable_tensor_float_32_execution(False)
    name = backend.tf_device(device)
    stride, pad = params["stride"], params["padding"]
    x0 = backend.upload(inputs["x"], device, spec.dtype)
    w = backend.upload(inputs["w"].transpose(2, 3, 1, 0).copy(), device, spec.dtype)
    with tf.device(name):
        x = tf.Variable(x0, trainable=False)
        del x0
    if params["layout"] == "NHWC":
        fmt, strides, padding = "NHWC", [1, stride, stride, 1], [[0, 0], [pad, pad], [pad, pad], [0, 0]]
    else:
        fmt, strides, padding = "NCHW", [1, 1, stride, stride], [[0, 0], [0, 0], [pad, pad], [pad, pad]]

    @tf.function
    def conv():
        with tf.device(name):
            return tf.nn.conv2d(x, w, strides, padding, data_format=fmt)

    conv.get_concrete_function()  # trace now, without running: the case's first (checked) call runs it
    holder = [None]

    def call():
        holder[0] = conv()
        return holder[0]

    return BoundOp(call=call, result=lambda: backend.download(holder[0]), timer=backend.timer(device),
                   device_inputs={"x": x}, device_output=lambda: holder[0])

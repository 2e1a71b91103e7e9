"""TensorFlow saxpy: ``y.assign_add(a * x)`` on a ``tf.Variable`` inside a traced ``tf.function``."""

from __future__ import annotations

from gpubench.backends.base import BoundOp


def build(backend, spec, params, inputs, device):
    """Keep y in a variable on the device and update it in place on every call."""
    tf = backend.tf
    name = backend.tf_device(device)
    x = backend.upload(inputs["x"], device, spec.dtype)
    with tf.device(name):
        y = tf.Variable(backend.upload(inputs["y"], device, spec.dtype))
        a = tf.constant(params["a"], dtype=x.dtype)

    @tf.function
    def saxpy():
        with tf.device(name):
            y.assign_add(a * x)

    saxpy.get_concrete_function()  # trace now, without running it
    return BoundOp(call=saxpy, result=lambda: backend.download(y), timer=backend.timer(device))

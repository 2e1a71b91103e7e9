"""TensorFlow saxpy: ``y.assign_add(a * x)`` on ``tf.Variable`` s, compiled by XLA into one fused kernel.

Run as two TensorFlow kernels, ``a * x`` writes a temporary that ``assign_add`` reads back: 5n
elements move (read x, write t, read t, read y, write y) where saxpy needs 3n, and the record's
GB/s, credited with 3n, would understate the memory system. ``tf.function(jit_compile=True)``
makes XLA fuse the product and the update into one loop that reads x and y and writes y, its
output aliased to the variable's buffer (``input_output_alias`` in the compiled HLO): 3n elements,
as credited. The record's metrics say so (``fusion``). XLA compiles on the first call.
"""

from __future__ import annotations

from gpubench.backends.base import BoundOp

FUSION = "xla: one fused kernel reads x and y and writes y (3n elements, as credited)"


def build(backend, spec, params, inputs, device):
    """Keep x and y in variables on the device and update y in place on every call."""
    tf = backend.tf
    name = backend.tf_device(device)
    with tf.device(name):
        x = tf.Variable(backend.upload(inputs["x"], device, spec.dtype), trainable=False)
        y = tf.Variable(backend.upload(inputs["y"], device, spec.dtype), trainable=False)
        a = tf.constant(params["a"], dtype=x.dtype)

    @tf.function(jit_compile=True)
    def saxpy():
        with tf.device(name):
            y.assign_add(a * x)

    saxpy.get_concrete_function()  # trace now, without running it (XLA compiles on the first call)
    return BoundOp(call=saxpy, result=lambda: backend.download(y), timer=backend.timer(device),
                   device_inputs={"x": x, "y": y}, device_output=y, metrics={"fusion": FUSION})

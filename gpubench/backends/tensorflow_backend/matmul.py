"""TensorFlow matmul: ``tf.linalg.matmul`` inside a traced ``tf.function`` pinned to the device.

A and B live in ``tf.Variable`` s on the device (reading one inside the function aliases its buffer,
no copy), so ``include_transfer`` can refill them from host memory on every call.
"""

from __future__ import annotations

from gpubench.backends.base import BoundOp


def build(backend, spec, params, inputs, device):
    """Trace the matmul once (without running it); each call runs the graph and returns a new device tensor."""
    tf = backend.tf
    # TensorFlow enables TF32 by default on Ampere+ GPUs: plain float32 cases must turn it off.
    # TensorflowBackend.case_scope restores the switch after the case.
    tf.config.experimental.enable_tensor_float_32_execution(bool(params.get("tf32")))
    name = backend.tf_device(device)
    with tf.device(name):
        a = tf.Variable(backend.upload(inputs["a"], device, spec.dtype), trainable=False)
        b = tf.Variable(backend.upload(inputs["b"], device, spec.dtype), trainable=False)

    @tf.function
    def matmul():
        with tf.device(name):
            return tf.linalg.matmul(a, b)

    matmul.get_concrete_function()  # trace now, without running: the case's first (checked) call runs it
    holder = [None]

    def call():
        holder[0] = matmul()
        return holder[0]

    return BoundOp(call=call, result=lambda: backend.download(holder[0]), timer=backend.timer(device),
                   device_inputs={"a": a, "b": b}, device_output=lambda: holder[0])

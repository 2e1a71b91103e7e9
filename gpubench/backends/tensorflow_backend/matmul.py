"""TensorFlow matmul: ``tf.linalg.matmul`` inside a traced ``tf.function`` pinned to the device."""

from __future__ import annotations

from gpubench.backends.base import BoundOp


def build(backend, spec, params, inputs, device):
    """Trace the matmul once; each call runs the graph and returns a new device tensor."""
    tf = backend.tf
    # TensorFlow enables TF32 by default on Ampere+ GPUs: plain float32 cases must turn it off.
    tf.config.experimental.enable_tensor_float_32_execution(bool(params.get("tf32")))
    name = backend.tf_device(device)
    a = backend.upload(inputs["a"], device, spec.dtype)
    b = backend.upload(inputs["b"], device, spec.dtype)

    @tf.function
    def matmul():
        with tf.device(name):
            return tf.linalg.matmul(a, b)

    matmul()  # trace now, not inside the first timed call
    return BoundOp(call=matmul, result=lambda: backend.download(matmul()), timer=backend.timer(device))

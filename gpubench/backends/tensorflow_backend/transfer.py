"""TensorFlow copies between host and GPU: ``tf.identity`` placed on the destination device.

TensorFlow has no API to allocate pinned host memory, and an identity on the same device may
forward its input buffer instead of copying, so only pageable ``h2d`` and ``d2h`` are measured;
pinned memory and ``d2d`` are skipped with that reason. Each call makes a new destination tensor
(TensorFlow tensors are immutable); the check compares the last one with the source bytes.
"""

from __future__ import annotations

from gpubench.backends.base import BoundOp


def unsupported(backend, spec, params, device):
    """Only GPU devices have memory of their own; pinned memory and d2d have no TensorFlow API."""
    if device.kind != "cuda":
        return "tensorflow: transfer needs a device with its own memory"
    if params.get("memory") == "pinned":
        return "tensorflow: no API for pinned host memory"
    if params["direction"] == "d2d":
        return "tensorflow: no guaranteed device-to-device copy (identity may alias its input)"
    return None


def build(backend, spec, params, inputs, device):
    """Bind one copy per call: host tensor → GPU (h2d) or GPU tensor → host (d2h)."""
    tf = backend.tf
    gpu = backend.tf_device(device)
    host = "/CPU:0"
    with tf.device(host):
        host_src = tf.constant(inputs["src"])
    if params["direction"] == "h2d":
        src, target = host_src, gpu
    else:
        with tf.device(gpu):
            src = tf.identity(host_src)
        target = host
    last = {}

    def call():
        with tf.device(target):
            last["dst"] = tf.identity(src)

    def result():
        backend.synchronize(device)
        return last["dst"].numpy().copy()

    return BoundOp(call=call, result=result, timer=backend.timer(device),
                   metrics={"host_memory": params.get("memory", "pageable")})

"""TensorFlow copies between host and GPU: ``tf.identity`` placed on the destination device.

TensorFlow has no API to allocate pinned host memory, and an identity on the same device may
forward its input buffer instead of copying, so only pageable ``h2d`` and ``d2h`` are measured;
pinned memory and ``d2d`` are skipped with that reason. Each call makes a new destination tensor
(TensorFlow tensors are immutable); the check compares the last one with the source bytes.

Each call copies from a *new* handle on the source buffer (:func:`fresh_copy`): TensorFlow's
eager runtime caches the first copy of a handle to a device as a mirror and reuses it, so copying
the same source handle again would move no bytes at all (a 1 GiB copy would read as tens of TB/s,
and the bit-exact check would still pass).
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
    from gpubench.backends.tensorflow_backend import HOST, fresh_copy

    tf = backend.tf
    gpu = backend.tf_device(device)
    with tf.device(HOST):
        host_src = tf.constant(inputs["src"])
    if params["direction"] == "h2d":
        src, source, target = host_src, HOST, gpu
    else:
        src, source, target = fresh_copy(tf, host_src, HOST, gpu), gpu, HOST
    last = {}

    def call():
        last["dst"] = fresh_copy(tf, src, source, target)

    def result():
        backend.synchronize(device)
        return last["dst"].numpy().copy()

    return BoundOp(call=call, result=result, timer=backend.timer(device),
                   metrics={"host_memory": params.get("memory", "pageable")}, blocks_host=True)

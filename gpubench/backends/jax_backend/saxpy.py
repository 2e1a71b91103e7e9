"""JAX saxpy: ``a·x + y`` compiled by XLA with ``y`` donated, so the update reuses y's buffer in place."""

from __future__ import annotations

from gpubench.backends.base import BoundOp
from gpubench.backends.jax_backend import DeviceSlot


def build(backend, spec, params, inputs, device):
    """Compile the fused ``y ← a·x + y`` (y donated) and bind one call of it."""
    a = params["a"]
    x = DeviceSlot(backend.upload(inputs["x"], device, spec.dtype), spec.dtype)
    y = DeviceSlot(backend.upload(inputs["y"], device, spec.dtype), spec.dtype)
    # a is a Python float: weakly typed, so the arithmetic stays in the case's dtype.
    update = backend.compile(lambda xv, yv: a * xv + yv, x.value, y.value, donate=(1,))
    keep = backend.keep
    # The executable's first run, on a scratch copy of y (the checked call must start from y itself).
    keep(device, update(x.value, backend.upload(inputs["y"], device, spec.dtype)))
    backend.synchronize(device)

    def call():
        y.value = keep(device, update(x.value, y.value))

    return BoundOp(call=call, result=lambda: backend.download(y), timer=backend.timer(device),
                   device_inputs={"x": x, "y": y}, device_output=lambda: y.value,
                   metrics={"in_place": "y donated to the output (XLA input/output aliasing)"})

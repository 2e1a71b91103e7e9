"""torch saxpy: ``y.add_(x, alpha=a)``, one fused pass."""

from __future__ import annotations

from gpubench.backends.base import BoundOp


def build(backend, spec, params, inputs, device):
    """Bind the in-place fused ``y += a·x``."""
    x = backend.upload(inputs["x"], device, spec.dtype)
    y = backend.upload(inputs["y"], device, spec.dtype)
    a = params["a"]

    def call():
        y.add_(x, alpha=a)

    return BoundOp(call=call, result=lambda: backend.download(y), timer=backend.timer(device),
                   device_inputs={"x": x, "y": y}, device_output=y)

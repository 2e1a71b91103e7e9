"""torch.matmul into a preallocated output; TF32 on CUDA only when the case asks for it."""

from __future__ import annotations

import functools

from gpubench.backends.base import BoundOp


def build(backend, spec, params, inputs, device):
    """Bind ``torch.matmul(a, b, out=c)`` on the device."""
    torch = backend.torch
    if device.kind == "cuda":
        torch.cuda.set_device(device.id)
        torch.backends.cuda.matmul.allow_tf32 = bool(params.get("tf32"))
    a = backend.upload(inputs["a"], device, spec.dtype)
    b = backend.upload(inputs["b"], device, spec.dtype)
    c = torch.empty((a.shape[0], b.shape[1]), dtype=a.dtype, device=a.device)
    return BoundOp(call=functools.partial(torch.matmul, a, b, out=c),
                   result=lambda: backend.download(c), timer=backend.timer(device),
                   device_inputs={"a": a, "b": b}, device_output=c)

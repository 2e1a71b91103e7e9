"""torch copies on CUDA: ``Tensor.copy_(non_blocking=True)``, timed with CUDA events.

Pinned host memory comes from ``Tensor.pin_memory()``; pageable host memory is a tensor over a
plain NumPy array (``torch.from_numpy``), which the CUDA driver stages through its own pinned
bounce buffer. The destination starts filled with 0xFF bytes, so the check proves the copy.
"""

from __future__ import annotations

from gpubench.backends.base import BoundOp


def unsupported(backend, spec, params, device):
    """Copies need a device with memory of its own (CUDA here)."""
    if device.kind != "cuda":
        return "torch: transfer needs a device with its own memory"
    return None


def build(backend, spec, params, inputs, device):
    """Bind one copy per call between host (pageable or pinned) and device, or device and device."""
    torch = backend.torch
    src_np = inputs["src"]
    direction = params["direction"]

    def host_tensor(values):
        t = torch.from_numpy(values.copy())
        return t.pin_memory() if params.get("memory") == "pinned" else t

    def ff_like(t):
        # Bytes 0xFF: a NaN pattern no random source holds, so a skipped copy fails the check.
        t.view(torch.uint8).fill_(0xFF)
        return t

    if direction == "h2d":
        src = host_tensor(src_np)
        dst = ff_like(torch.empty(src.shape, dtype=src.dtype, device=device.id))
    elif direction == "d2h":
        src = torch.from_numpy(src_np.copy()).to(device.id)
        dst = ff_like(host_tensor(src_np))
    else:
        src = torch.from_numpy(src_np.copy()).to(device.id)
        dst = ff_like(torch.empty_like(src))
    torch.cuda.synchronize(device.id)

    def call():
        dst.copy_(src, non_blocking=True)

    def result():
        torch.cuda.synchronize(device.id)
        return dst.cpu().numpy().copy()

    return BoundOp(call=call, result=result, timer=backend.timer(device),
                   metrics={"host_memory": params.get("memory", "device"),
                            "pinned": bool(direction != "d2d" and (src if direction == "h2d" else dst).is_pinned())},
                   blocks_host=params.get("memory") == "pageable")

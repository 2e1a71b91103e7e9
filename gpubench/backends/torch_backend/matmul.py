"""torch.matmul into a preallocated output; TF32 on CUDA only when the case asks for it.

Variants:

* ``default``: one ``torch.matmul(a, b, out=c)`` per call (PyTorch's dispatcher launches cuBLAS);
* ``graph`` (CUDA only): the same call captured once into a CUDA graph and replayed per call
  (one ``cudaGraphLaunch``), so that a small product's device time is not hidden behind the
  host's per-call launch cost.
"""

from __future__ import annotations

import functools

from gpubench.backends.base import BoundOp

VARIANTS = ("default", "graph")
VARIANT_DEVICE_KINDS = {"graph": ("cuda",)}


def build(backend, spec, params, inputs, device):
    """Bind ``torch.matmul(a, b, out=c)`` on the device (replayed from a CUDA graph for ``graph``)."""
    torch = backend.torch
    if device.kind == "cuda":
        # Restored after the case by TorchBackend.case_scope.
        torch.backends.cuda.matmul.allow_tf32 = bool(params.get("tf32"))
    a = backend.upload(inputs["a"], device, spec.dtype)
    b = backend.upload(inputs["b"], device, spec.dtype)
    c = torch.empty((a.shape[0], b.shape[1]), dtype=a.dtype, device=a.device)
    call = functools.partial(torch.matmul, a, b, out=c)
    metrics = {}
    if spec.variant == "graph":
        from gpubench.backends.torch_backend import capture_graph

        graph = capture_graph(torch, backend.index(device), call)
        call = graph.replay
        metrics["cuda_graph"] = "one captured torch.matmul replayed per call"
    return BoundOp(call=call, result=lambda: backend.download(c), timer=backend.timer(device),
                   device_inputs={"a": a, "b": b}, device_output=c, metrics=metrics)

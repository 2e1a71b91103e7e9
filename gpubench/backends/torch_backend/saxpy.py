"""torch saxpy: ``y.add_(x, alpha=a)``, one fused pass.

Variants: ``default`` calls it per call; ``graph`` (CUDA only) captures it once into a CUDA graph
and replays the graph per call, so that small sizes show the kernel's device time rather than the
host's launch rate.
"""

from __future__ import annotations

from gpubench.backends.base import BoundOp

VARIANTS = ("default", "graph")
VARIANT_DEVICE_KINDS = {"graph": ("cuda",)}


def build(backend, spec, params, inputs, device):
    """Bind the in-place fused ``y += a·x``."""
    x = backend.upload(inputs["x"], device, spec.dtype)
    y = backend.upload(inputs["y"], device, spec.dtype)
    a = params["a"]

    def call():
        y.add_(x, alpha=a)

    metrics = {}
    if spec.variant == "graph":
        from gpubench.backends.torch_backend import capture_graph

        graph = capture_graph(backend.torch, backend.index(device), call)
        # Warm-up ran y += a·x a few times: start the case from the pristine input again.
        y.copy_(backend.upload(inputs["y"], device, spec.dtype))
        call = graph.replay
        metrics["cuda_graph"] = "one captured y.add_(x, alpha=a) replayed per call"
    return BoundOp(call=call, result=lambda: backend.download(y), timer=backend.timer(device),
                   device_inputs={"x": x, "y": y}, device_output=y, metrics=metrics)

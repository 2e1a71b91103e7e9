"""Model inference in PyTorch: the eager module, ``torch.compile`` of it, and a CUDA graph of it.

The models are :mod:`gpubench.backends.torch_backend.inference_nets` (torchvision's ResNet-18,
the MNIST models, the GPT decoder) in eval mode, loaded with the case's weights and converted to
its dtype, no parameter requiring grad (so no autograd graph is recorded; ``inference_mode``
would add its context to every call). The batch is uploaded once; each call returns a new output.

Variants:

* ``default``: eager ``net(x)``, op by op (oneDNN on the CPU, cuDNN/cuBLAS on CUDA);
* ``compile``: ``torch.compile(net, dynamic=True)`` (TorchInductor, default mode), compiled by the
  case's first call, outside any timing. The batch axis is dynamic, as a server compiles once for
  every batch size it will see: torch specializes batch 1, and one compilation serves every larger
  batch (inductor's FX-graph cache makes the later cases' compilations a cache hit);
* ``graph`` (CUDA only): the eager forward captured once into a CUDA graph and replayed per
  call (one launch for the whole network), its input and output static buffers.

On CUDA, float32 runs in true float32 (TF32 off for cuBLAS and cuDNN; restored after the case by
:meth:`TorchBackend.case_scope`) with cuDNN's autotuner on. Peak memory is the peak allocated
during one call beyond what was allocated before it (``torch.cuda.max_memory_allocated``; on the
CPU, the profiler's record of the allocator), as the attention workload measures it.
"""

from __future__ import annotations

import numpy as np

from gpubench.backends.base import BoundOp
from gpubench.backends.torch_backend.attention import measure_peak
from gpubench.backends.torch_backend.inference_nets import build_net
from gpubench.workloads.inference import case_weights

VARIANTS = ("default", "compile", "graph")
VARIANT_DEVICE_KINDS = {"graph": ("cuda",)}


def to_device(net, device, dtype):
    """The module on the case's device in its dtype."""
    return net.to(device=device.id, dtype=dtype)


def build(backend, spec, params, inputs, device):
    """The model on the device in the case's dtype, bound as one forward pass per call."""
    torch = backend.torch
    if device.kind == "cuda":
        torch.cuda.set_device(device.id)
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    dtype = backend.torch_dtype(spec.dtype)
    net = to_device(build_net(torch, params["model"], case_weights(inputs)), device, dtype)
    x_host = inputs["x"]
    x = backend.upload(x_host, device, None if x_host.dtype.kind == "i" else spec.dtype)
    metrics = {"torch_variant": {"default": "eager", "compile": "torch.compile(dynamic=True), inductor",
                                 "graph": "CUDA graph of the eager forward"}[spec.variant]}
    forward = torch.compile(net, dynamic=True) if spec.variant == "compile" else net
    holder = [None]

    def call():
        holder[0] = forward(x)

    if spec.variant == "graph":
        from gpubench.backends.torch_backend import capture_graph

        static: list = [None]

        def captured():
            static[0] = net(x)

        graph = capture_graph(torch, backend.index(device), captured)
        holder[0] = static[0]  # the replayed graph writes this same static output every call
        call = graph.replay

    call()  # compilation, cuDNN's algorithm choice, first allocations: before the memory is measured
    metrics.update(measure_peak(torch, device, call))

    def result() -> np.ndarray:
        return backend.download(holder[0])

    def close() -> None:
        holder[0] = None
        if device.kind == "cuda":
            torch.cuda.empty_cache()

    return BoundOp(call=call, result=result, timer=backend.timer(device), close=close, metrics=metrics)

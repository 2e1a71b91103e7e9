"""The input pipeline on torch: ``torch.utils.data.DataLoader`` feeding an SGD training step.

The loader indexes the workload's :class:`~gpubench.workloads.pipeline_data.PipelineDataset` in
stream order (``shuffle=False``: the stream is already a per-pass permutation), ``drop_last``,
with the case's ``num_workers`` (worker processes started with the platform's default method),
``pin_memory`` and ``prefetch_factor``; each batch goes to the device with
``.to(device, non_blocking=...)``. The step is ``zero_grad``, forward, cross-entropy, backward and
``SGD(momentum=0.9)``; its loss stays on the device until the workload asks for it.
"""

from __future__ import annotations

import os
from typing import Any

from gpubench.workloads.input_pipeline import PipelineSession


def usable_cores() -> int:
    """Cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def unsupported(backend, spec, params, device) -> str | None:
    """Pinned memory and asynchronous copies are host→device options; workers beyond the cores are skipped."""
    if device.kind != "cuda" and (params["pin_memory"] or params["non_blocking"]):
        return f"torch: pin_memory and non_blocking speed host→device copies; {device.kind} has none"
    cores = usable_cores()
    if params["num_workers"] > cores:
        return f"torch: num_workers = {params['num_workers']} is more than the {cores} usable cores"
    return None


class TorchPipeline(PipelineSession):
    """A DataLoader over the case's stream and a model with its optimizer on the device."""

    def __init__(self, backend, spec, params, inputs, device):
        from gpubench.workloads import get_workload
        from gpubench.workloads import torch_nets as nets

        torch = self.torch = backend.torch
        self.backend, self.device, self.params = backend, device, params
        workload = get_workload("input_pipeline")
        self.dataset = workload.dataset(inputs, params)
        torch.manual_seed(params["seed"])
        self.net = nets.build(torch, params["model"], workload.classes(params)).to(device.id)
        self.opt = torch.optim.SGD(self.net.parameters(), lr=params["lr"], momentum=0.9)
        self.net.train()
        self._iter = None
        self.clock = "perf_counter"
        self.info = {"loader": "torch.utils.data.DataLoader",
                     "worker_start_method": torch.multiprocessing.get_start_method(allow_none=True) or "default",
                     "usable_cores": usable_cores(), "torch_threads": torch.get_num_threads()}

    def loader(self):
        p = self.params
        kwargs: dict[str, Any] = {"prefetch_factor": p["prefetch_factor"]} if p["num_workers"] > 0 else {}
        dl = self.torch.utils.data.DataLoader(self.dataset, batch_size=p["batch_size"], shuffle=False,
                                              num_workers=p["num_workers"], pin_memory=p["pin_memory"],
                                              drop_last=True, **kwargs)
        self._iter = iter(dl)
        return self._iter

    def host_arrays(self, batch):
        x, y = batch
        return x.numpy(), y.numpy()

    def to_device(self, batch):
        x, y = batch
        if self.device.kind == "cpu":
            return x, y
        nb = self.params["non_blocking"]
        return x.to(self.device.id, non_blocking=nb), y.to(self.device.id, non_blocking=nb)

    def step(self, batch):
        x, y = batch
        self.opt.zero_grad(set_to_none=True)
        loss = self.torch.nn.functional.cross_entropy(self.net(x), y)
        loss.backward()
        self.opt.step()
        return loss.detach()

    def loss_value(self, loss) -> float:
        return float(loss)

    def sync(self) -> None:
        self.backend.synchronize(self.device)

    def close(self) -> None:
        it, self._iter = self._iter, None
        if it is not None and hasattr(it, "_shutdown_workers"):
            it._shutdown_workers()  # the workers end now, not at garbage collection
        self.net = self.opt = None
        if self.device.kind == "cuda":
            self.torch.cuda.empty_cache()


def build(backend, spec, params, inputs, device) -> TorchPipeline:
    """The loader and the training step of one case (cuDNN autotuned, TF32 as torch's defaults leave it)."""
    if device.kind == "cuda":
        backend.torch.backends.cudnn.benchmark = True

    return TorchPipeline(backend, spec, params, inputs, device)

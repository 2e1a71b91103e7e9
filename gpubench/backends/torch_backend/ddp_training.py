"""``ddp_training`` on torch: DistributedDataParallel over N rank processes (gloo on the CPU, NCCL on CUDA).

The ranks are launched as the collectives' are (:class:`~.collective.SpawnedSession`: spawned
children of the worker, a TCP-store rendezvous on a free port, every step under a deadline, every
rank killed on a hang). Inside a torchrun job the rank is this process (:class:`DdpGroupSession`).
"""

from __future__ import annotations

import numpy as np

from gpubench.workloads.collective import CollectiveSession
from gpubench.workloads.ddp import DEFAULT_TIMEOUT_S

BENCH = "gpubench.backends.torch_backend.ddp_rank:DdpBench"


def _bench_kwargs(params: dict) -> dict:
    return {"model": params["model"], "global_batch": params["global_batch"], "size": params.get("image_size", 28),
            "steps": params["steps"], "lr": params["lr"], "seed": params["seed"]}


def unsupported(backend, spec, params, device) -> str | None:
    """gloo needs torch.distributed; NCCL needs one CUDA device per rank; several nodes need torchrun."""
    from gpubench.backends.torch_backend.collective import _device_index, nccl_skip_reason

    dist = backend.torch.distributed
    if not dist.is_available():
        return "torch: this torch build has no torch.distributed"
    if dist.is_initialized():
        if dist.get_world_size() != params["ranks"]:
            return f"torch: the process group has {dist.get_world_size()} ranks, the case asks for {params['ranks']}"
        return None
    if params.get("nodes", 1) > 1:
        return (f"torch: {params['nodes']} nodes run through torchrun's rendezvous "
                "(torchrun ... -m gpubench.collective --suite ddp), not inside one worker")
    if device.kind == "cpu":
        return None if dist.is_gloo_available() else "torch: this torch build has no gloo backend"
    if device.kind == "cuda":
        if params["ranks"] == 1:
            return None if dist.is_nccl_available() else "torch: this torch build has no NCCL backend"
        return nccl_skip_reason(params["ranks"], backend.torch.cuda.device_count(), dist.is_nccl_available(),
                                _device_index(device))
    return f"torch: ddp_training runs on cpu (gloo) or cuda (NCCL), not on {device.kind}"


class DdpGroupSession(CollectiveSession):
    """This process is one rank of an initialized process group (a torchrun job)."""

    def __init__(self, torch, params, device):
        import os

        from gpubench.backends.torch_backend.collective_rank import comm_backend, rank_info
        from gpubench.backends.torch_backend.ddp_rank import DdpBench

        if device.kind == "cuda":
            tdev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", torch.cuda.current_device())))
            torch.cuda.set_device(tdev)
        else:
            tdev = torch.device("cpu")
        self.torch, self.tdev = torch, tdev
        self.bench = DdpBench(torch, tdev, **_bench_kwargs(params))
        self.clock = "cuda_event" if tdev.type == "cuda" else "perf_counter"
        self.info = {**rank_info(torch, tdev), "launcher": "torchrun (torch.distributed.run)",
                     "comm_backend": comm_backend(tdev.type)}

    def verify(self) -> np.ndarray:
        # Every rank holds the same global losses (an all-reduce made them): one row per rank, as spawned ranks give.
        return np.array([self.bench.verify()] * self.bench.world, dtype=np.float64)

    def time(self, settings):
        from gpubench.backends.torch_backend.collective import _timing

        return _timing(self.bench.time(settings))


def build(backend, spec, params, inputs, device) -> CollectiveSession:
    """The ranks of one case, launched and holding their model (or this process, inside a torchrun job)."""
    from gpubench.backends.torch_backend.collective import SpawnedSession

    torch = backend.torch
    if torch.distributed.is_initialized():
        return DdpGroupSession(torch, params, device)
    return SpawnedSession(torch, None, params["seed"], 0, spec.dtype, device,
                          params.get("timeout_s", DEFAULT_TIMEOUT_S), bench=(BENCH, _bench_kwargs(params)),
                          ranks=params["ranks"])

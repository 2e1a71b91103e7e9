"""What each rank of a ``ddp_training`` case runs: a DistributedDataParallel model, its verified steps, timed steps.

Built by :func:`~gpubench.backends.torch_backend.collective_rank.make_bench` in a rank started by
gpubench's launcher, or directly in a torchrun rank; the timing loop is the collectives' own
(:class:`~gpubench.backends.torch_backend.collective_rank.RankBench`), so every rank takes the same
warm-up and stopping decisions.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from gpubench.backends.torch_backend.collective_rank import RankBench

#: Test-only switch (never set by a suite): the ranks skip DDP's gradient all-reduce (``no_sync``), so each
#: trains its own model. It exists to prove that a data-parallel run that does not average is ``incorrect``.
NO_SYNC_ENV = "GPUBENCH_TEST_DDP_NO_SYNC"


class DdpBench(RankBench):
    """One rank's share of every global batch, its DDP model and its optimizer."""

    def __init__(self, torch: Any, device: Any, model: str, global_batch: int, size: int, steps: int,
                 lr: float, seed: int):
        import torch.distributed as dist
        from torch.nn.parallel import DistributedDataParallel

        from gpubench.workloads import torch_nets as nets
        from gpubench.workloads.ddp import CLASSES, batches, shard

        self.torch, self.dist, self.device = torch, dist, device
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        self.cuda = device.type == "cuda"
        self.steps, self.lr = steps, lr
        self.data = [tuple(torch.from_numpy(a).to(device) for a in shard(b, self.rank, self.world))
                     for b in batches(model, seed, steps, global_batch, size)]
        torch.manual_seed(seed)  # the same initial weights on every rank (DDP also broadcasts rank 0's)
        self.net = nets.build(torch, model, CLASSES).to(device)
        self.initial = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
        self.ddp = DistributedDataParallel(self.net, device_ids=[device.index] if self.cuda else None)
        self.opt = torch.optim.SGD(self.ddp.parameters(), lr=lr)
        self.i = 0
        self.no_sync = os.environ.get(NO_SYNC_ENV, "").strip() == "1"

    def _step(self, x: Any, y: Any) -> Any:
        self.opt.zero_grad(set_to_none=True)
        with self.ddp.no_sync() if self.no_sync else contextlib.nullcontext():
            loss = self.torch.nn.functional.cross_entropy(self.ddp(x), y)
            loss.backward()
        self.opt.step()
        return loss.detach()

    def verify(self) -> list[float]:
        """``steps`` steps from the initial weights; the global loss of each (mean over the ranks), every rank alike."""
        torch = self.torch
        with torch.no_grad():
            self.net.load_state_dict(self.initial)
        self.opt = torch.optim.SGD(self.ddp.parameters(), lr=self.lr)
        self.ddp.train()
        local = torch.stack([self._step(x, y) for x, y in self.data]).to(torch.float64)
        self.dist.all_reduce(local, op=self.dist.ReduceOp.SUM)
        return (local / self.world).tolist()

    def _run(self) -> None:
        x, y = self.data[self.i % len(self.data)]
        self.i += 1
        self._step(x, y)

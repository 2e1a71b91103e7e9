"""What each rank of a torch.distributed collective case runs: buffers, one verified collective, timed iterations.

Used two ways:

* inside processes started by :mod:`gpubench.backends.torch_backend.collective` through
  ``torch.multiprocessing.start_processes`` (one case of ``gpubench run``): :func:`spawned_rank`
  joins the group through the case's TCP store and serves the parent's commands over a pipe;
* inside every rank of a ``torchrun`` job (``python -m gpubench.collective``), where the process
  group is already initialized: the case path runs :class:`CollectiveBench` in the process itself.

The values and the expected output come from :mod:`gpubench.workloads.collective` (the same
NumPy tables the reference uses), as integers, so every comparison is exact.
"""

from __future__ import annotations

import datetime
import math
import os
import time
import traceback
from typing import Any

from gpubench.harness import HarnessSettings
from gpubench.lifeline import die_with_parent
from gpubench.stats import summarize
from gpubench.workloads.collective import CHUNK, Layout, rank_table, segments

#: Test-only switches (never set by a suite): the rank named in the variable hangs before its
#: first collective, or corrupts its output after it. They exist to prove that a hung rank becomes
#: a ``timeout`` with every process killed, and that a wrong collective becomes ``incorrect``.
HANG_ENV = "GPUBENCH_TEST_COLLECTIVE_HANG_RANK"
CORRUPT_ENV = "GPUBENCH_TEST_COLLECTIVE_CORRUPT_RANK"
#: Test-only: the rank named hangs before it joins the group (its peers wait in the rendezvous).
HANG_LAUNCH_ENV = "GPUBENCH_TEST_COLLECTIVE_HANG_LAUNCH_RANK"


def is_comm_timeout(exc: BaseException) -> bool:
    """Whether ``exc`` is torch.distributed giving up on a peer: gloo's ``Timed out waiting ...`` on a receive,
    a store or rendezvous timeout (``DistStoreError``, ``DistNetworkError``), NCCL's watchdog timeout."""
    text = str(exc).lower()
    return isinstance(exc, (RuntimeError, TimeoutError)) and ("timed out" in text or "timing out" in text)

def _test_switch(name: str, rank: int) -> bool:
    value = os.environ.get(name, "")
    return value.strip() != "" and value.strip() == str(rank)


def fill_periodic(torch: Any, buf: Any, table: Any) -> None:
    """``buf[j] = table[j % len(table)]`` for a 1-D ``buf``, by whole-period blocks (a copy, no arithmetic)."""
    block = table.repeat(max(1, CHUNK // table.numel()))
    for start in range(0, buf.numel(), block.numel()):
        stop = min(start + block.numel(), buf.numel())
        buf[start:stop].copy_(block[:stop - start])


def count_mismatches(torch: Any, buf: Any, table: Any) -> int:
    """Elements of ``buf`` that differ from ``table`` repeated (exact; NaN always differs)."""
    block = table.repeat(max(1, CHUNK // table.numel()))
    wrong = 0
    for start in range(0, buf.numel(), block.numel()):
        stop = min(start + block.numel(), buf.numel())
        wrong += int(buf[start:stop].ne(block[:stop - start]).sum().item())
    return wrong


class RankBench:
    """One rank's side of a case that spans a process group: verify once, then time iterations together.

    Subclasses set ``torch``, ``dist``, ``device``, ``rank``, ``world`` and ``cuda`` and implement
    :meth:`verify`, :meth:`_run` (one iteration's work) and optionally :meth:`_prepare` (its inputs,
    outside the clock) and :meth:`_after_timing` (a check of the last timed iteration).
    """

    torch: Any
    dist: Any
    device: Any
    rank: int
    world: int
    cuda: bool

    def verify(self) -> Any:
        """One verified run; its picklable result goes to the parent."""
        raise NotImplementedError

    def _prepare(self) -> None:
        """Inputs of one iteration (outside any clock)."""

    def _run(self) -> None:
        raise NotImplementedError

    def _after_timing(self) -> None:
        """Raise when the last timed iteration went wrong."""

    def _barrier(self) -> None:
        if self.cuda:
            self.dist.barrier(device_ids=[self.device.index])
        else:
            self.dist.barrier()

    def _agree(self, values: list[float]) -> list[float]:
        """Element-wise maximum of ``values`` over the ranks (every rank gets the same list)."""
        t = self.torch.tensor(values, dtype=self.torch.float64, device=self.device)
        self.dist.all_reduce(t, op=self.dist.ReduceOp.MAX)
        return t.tolist()

    def _iteration(self) -> tuple[float, float]:
        """One timed collective after a barrier: (clock seconds, host seconds)."""
        self._prepare()
        self._barrier()
        if self.cuda:
            start, end = (self.torch.cuda.Event(enable_timing=True) for _ in range(2))
            t0 = time.perf_counter()
            start.record()
            self._run()
            end.record()
            end.synchronize()
            host = time.perf_counter() - t0
            return start.elapsed_time(end) / 1e3, host
        t0 = time.perf_counter()
        self._run()
        host = time.perf_counter() - t0
        return host, host

    def time(self, s: HarnessSettings) -> dict[str, Any]:
        """Warm-up and timed iterations under the harness's rules, decided identically on every rank.

        Each block of iterations ends with one small all_reduce(MAX) of the block's times and the
        elapsed time: every rank then holds the same per-iteration maxima and takes the same
        decision to stop (the median's 95 % interval within ``target_rel_ci`` after at least
        ``min_samples``, or ``max_samples``, or ``budget_s``). Returns the samples, the host-clock
        samples (CUDA only), the warm-up count, whether the target was met and the elapsed time.
        """
        t_start = time.perf_counter()
        calls, block = 0, max(1, s.warmup_min_calls)
        while True:  # warm-up: the verification was the first call; now until warmup_s has passed
            last = [self._iteration()[0] for _ in range(block)]
            calls += block
            elapsed, per_call = self._agree([time.perf_counter() - t_start, min(last)])
            if elapsed >= s.warmup_s or calls >= 10_000:
                break
            block = max(1, min(10_000 - calls, math.ceil((s.warmup_s - elapsed) / max(per_call, 1e-9))))
        samples: list[float] = []
        hosts: list[float] = []
        target_met = False
        t_sampling = time.perf_counter()
        block = s.min_samples
        while True:
            pairs = [self._iteration() for _ in range(block)]
            agreed = self._agree([p[0] for p in pairs] + [p[1] for p in pairs] + [time.perf_counter() - t_sampling])
            samples += agreed[:block]
            hosts += agreed[block:2 * block]
            n = len(samples)
            if n >= s.min_samples:
                if summarize(samples).rel_ci_halfwidth <= s.target_rel_ci:
                    target_met = True
                    break
                if n >= s.max_samples or agreed[-1] >= s.budget_s:
                    break
            block = max(1, min(s.max_samples - n, max(2, n // 4)))
        self._after_timing()
        return {"samples": samples, "host_samples": hosts if self.cuda else [], "warmup_calls": calls,
                "target_met": target_met, "elapsed_s": time.perf_counter() - t_start}


class CollectiveBench(RankBench):
    """One rank's buffers for one collective, with its verification and its timing loop.

    The process group must be initialized. Buffers: all_reduce keeps the pristine input and a
    working buffer (the collective sums in place, so every timed iteration starts from a fresh
    copy, made outside the clock); all_gather a send buffer of ``S / n`` and an output of ``S``;
    broadcast one buffer (root 0). The expected output is held as one period per segment
    (:func:`~gpubench.workloads.collective.segments`), so a check is a block-wise comparison.
    """

    def __init__(self, torch: Any, lay: Layout, seed: int, bound: int, dtype: str, device: Any):
        import torch.distributed as dist

        self.torch, self.dist, self.lay = torch, dist, lay
        self.device = device
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        if self.world != lay.ranks:
            raise RuntimeError(f"the process group has {self.world} ranks, the case asks for {lay.ranks}")
        self.dtype = getattr(torch, dtype)
        self.cuda = device.type == "cuda"

        def on_device(table):  # integers the dtype holds exactly
            return torch.from_numpy(table).to(device=device, dtype=self.dtype)

        self.segments = [(start, length, on_device(table)) for start, length, table in segments(lay, seed, bound)]
        mine = on_device(rank_table(seed, self.rank, bound))
        empty = lambda n: torch.empty(n, dtype=self.dtype, device=device)  # noqa: E731
        c = lay.collective
        if c == "all_reduce":
            self.src, self.buf = empty(lay.count), empty(lay.count)
            fill_periodic(torch, self.src, mine)
            self.out = self.buf
        elif c == "all_gather":
            self.send, self.out = empty(lay.send_count), empty(lay.count)
            fill_periodic(torch, self.send, mine)
        else:
            self.buf = self.out = empty(lay.count)
        # all_gather_single replaces all_gather_into_tensor from torch 2.13 (the older name warns there).
        self.gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
        self.corrupt = _test_switch(CORRUPT_ENV, self.rank)
        self.hang = _test_switch(HANG_ENV, self.rank)

    def _prepare(self) -> None:
        """Inputs of one collective (outside any clock)."""
        if self.lay.collective == "all_reduce":
            self.buf.copy_(self.src)

    def _run(self) -> None:
        c, dist = self.lay.collective, self.dist
        if c == "all_reduce":
            dist.all_reduce(self.buf, op=dist.ReduceOp.SUM)
        elif c == "all_gather":
            self.gather(self.out, self.send)
        else:
            dist.broadcast(self.buf, src=0)

    def _after_timing(self) -> None:
        wrong = self.wrong_elements()  # the last timed collective must be right too
        if wrong:
            raise RuntimeError(f"rank {self.rank}: {wrong} wrong elements after the timed iterations")

    def wrong_elements(self) -> int:
        """Output elements that differ from the expected integers (exact; NaN is wrong)."""
        return sum(count_mismatches(self.torch, self.out[start:start + length], table)
                   for start, length, table in self.segments)

    def checksum(self) -> float:
        """Σ out[i]·(i mod 7 + 1) in float64: exact, every partial sum is an integer below 2**53."""
        torch, total = self.torch, 0.0
        for start in range(0, self.lay.count, CHUNK):
            stop = min(start + CHUNK, self.lay.count)
            idx = torch.arange(start, stop, dtype=torch.int64, device=self.device)
            total += float(torch.dot(self.out[start:stop].to(torch.float64), (idx % 7 + 1).to(torch.float64)).item())
        return total

    # --- the two steps ------------------------------------------------------------------------
    def verify(self) -> tuple[int, float]:
        """One collective on fresh inputs, then the exact check: (wrong elements, output checksum).

        Outputs start as NaN (on every rank but broadcast's root, whose buffer is the input), so
        a collective that leaves an output untouched is wrong.
        """
        c = self.lay.collective
        if c == "broadcast":
            if self.rank == 0:
                fill_periodic(self.torch, self.buf, self.segments[0][2])
            else:
                self.buf.fill_(float("nan"))
        elif c == "all_gather":
            self.out.fill_(float("nan"))
        self._prepare()
        while self.hang:  # test-only: a rank that never joins the collective
            time.sleep(1.0)
        self._run()
        if self.cuda:
            self.torch.cuda.synchronize(self.device)
        if self.corrupt:  # test-only: a collective that delivered one wrong element
            self.out[0] += 1
        return self.wrong_elements(), self.checksum()

def comm_backend(device_kind: str) -> str:
    """The torch.distributed backend of a device kind: gloo on the CPU, NCCL on CUDA."""
    return "nccl" if device_kind == "cuda" else "gloo"


def rank_info(torch: Any, device: Any) -> dict[str, Any]:
    """Facts about this rank's setup, stored in the case's metrics."""
    info: dict[str, Any] = {"comm_backend": comm_backend(device.type), "torch": torch.__version__}
    if device.type == "cuda":
        info["rank_device_name"] = torch.cuda.get_device_name(device)
        nccl = getattr(torch.cuda, "nccl", None)
        try:
            version = nccl.version() if nccl is not None else None
            info["nccl"] = ".".join(map(str, version)) if isinstance(version, tuple) else version
        except Exception:  # noqa: BLE001 - a version is a nicety
            pass
    return info


def make_bench(torch: Any, cfg: dict[str, Any], device: Any) -> RankBench:
    """This rank's bench: ``cfg["bench"] = ("module:Class", kwargs)`` (built as ``Class(torch, device, **kwargs)``),
    else the collective of ``cfg["layout"]``."""
    if cfg.get("bench"):
        import importlib

        target, kwargs = cfg["bench"]
        module, name = target.split(":")
        return getattr(importlib.import_module(module), name)(torch, device, **kwargs)
    return CollectiveBench(torch, cfg["layout"], cfg["seed"], cfg["bound"], cfg["dtype"], device)


def spawned_rank(local_rank: int, cfg: dict[str, Any], conns: list[Any]) -> None:
    """Entry of a rank started by ``torch.multiprocessing.start_processes``: join the group, serve commands.

    Commands arrive on this rank's pipe as ``(name, argument)``: ``verify`` → ``(wrong, checksum)``,
    ``time`` (harness settings as a dict) → the timing dict, ``stop`` → leave the group and exit.
    Every reply is ``("ok", value)`` or ``("error", text)``; after an error the rank exits.
    """
    die_with_parent(cfg["parent_pid"])
    if _test_switch(HANG_LAUNCH_ENV, local_rank):
        time.sleep(3600)
    conn = conns[local_rank]
    for i, other in enumerate(conns):
        if i != local_rank:
            other.close()
    import torch
    import torch.distributed as dist

    def reply(kind: str, value: Any) -> None:
        try:
            conn.send((kind, value))
        except (BrokenPipeError, OSError):  # the parent is gone: nothing left to do
            os._exit(1)

    try:
        # The group's own limit is longer than every step limit of the parent, which alone decides that a
        # step took too long (a hung rank is the case's timeout, never a peer's receive error).
        timeout = datetime.timedelta(seconds=cfg.get("group_timeout_s", cfg["timeout_s"]))
        if cfg["device_kind"] == "cuda":
            device = torch.device("cuda", cfg["device_base"] + local_rank)
            torch.cuda.set_device(device)
        else:
            device = torch.device("cpu")
            torch.set_num_threads(cfg["threads"])
        store = dist.TCPStore(cfg["host"], cfg["port"], None, is_master=False, timeout=timeout)
        kwargs = {"device_id": device} if device.type == "cuda" else {}
        dist.init_process_group(comm_backend(device.type), store=store, rank=local_rank,
                                world_size=cfg["ranks"], timeout=timeout, **kwargs)
        bench = make_bench(torch, cfg, device)
        reply("ok", rank_info(torch, device))
    except Exception:  # noqa: BLE001 - the parent turns it into the case's error
        reply("error", _last_line())
        return
    try:
        while True:
            try:
                name, arg = conn.recv()
            except EOFError:
                return
            try:
                if name == "verify":
                    reply("ok", bench.verify())
                elif name == "time":
                    reply("ok", bench.time(HarnessSettings(**arg)))
                elif name == "stop":
                    return
                else:
                    raise ValueError(f"unknown command {name!r}")
            except Exception:  # noqa: BLE001
                reply("error", _last_line())
                return
    finally:
        try:
            dist.destroy_process_group()
        except Exception:  # noqa: BLE001 - leaving is best effort; the parent kills what stays
            pass


def _last_line() -> str:
    """The current exception as one line (its type and message, from the traceback's last line)."""
    lines = [ln for ln in traceback.format_exc().strip().splitlines() if ln.strip()]
    return lines[-1][:500] if lines else "unknown error"

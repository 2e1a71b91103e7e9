"""torch.distributed collectives: N ranks as processes, gloo on the CPU, NCCL on CUDA (one rank per GPU).

The op modules ``all_reduce``, ``all_gather`` and ``broadcast`` of the torch backend are this
module. ``build`` returns a :class:`~gpubench.workloads.collective.CollectiveSession`:

* in a plain process (a ``gpubench run`` worker, a test): :class:`SpawnedSession` starts the
  ranks with ``torch.multiprocessing.start_processes`` (spawn). That is torch's own launcher for
  processes of one machine, and it starts the ranks as ordinary children: they stay in the
  worker's process group, which the runner kills whole on a timeout. (torchelastic's agent —
  torchrun, ``elastic_launch`` — starts script ranks with ``start_new_session=True``, out of that
  group, and adds an agent with its own signal handling and restarts inside the worker.) The
  rendezvous is a TCP store the parent itself serves on a free port (bound to port 0, so no two
  cases can race for a port). Every rank arms ``PR_SET_PDEATHSIG`` with SIGKILL, so it dies with
  the worker even when the worker is SIGKILLed. Every step (launch, verification, timing) has a
  deadline, kept by the parent alone: a rank that does not answer in time is a ``timeout`` and
  every rank is killed (the ranks' own group timeout is longer, :data:`RANK_GRACE_S`, so a peer
  waiting for a hung rank never reports its receive timeout first);
* inside a rank of a ``torchrun`` job (``python -m gpubench.collective``), where the process
  group already exists: :class:`GroupSession` runs the collective in the process itself, which is
  how one case spans several nodes through torchrun's rendezvous. There the group's timeout is
  the only clock: a collective it gives up on ends the case as ``timeout``.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import signal
import time
from typing import Any

import numpy as np

from gpubench.errors import CaseTimeout
from gpubench.harness import HarnessSettings
from gpubench.workloads.collective import DEFAULT_TIMEOUT_S, CollectiveSession, RankTiming, layout

#: Extra time a launch may take beyond the case's step limit: spawning N interpreters that each
#: import torch (and initialize CUDA and NCCL) takes seconds to a minute on a loaded machine.
LAUNCH_ALLOWANCE_S = 120.0

#: How long ranks get to leave the group after ``stop`` before they are killed.
STOP_GRACE_S = 10.0

#: How much longer than the parent's longest step limit (the launch's) the ranks' own process-group and
#: store timeouts are: the parent's deadline always comes first, so a hung rank ends its case as
#: ``timeout``, not as a peer's ``error`` from gloo's receive timeout racing the parent's clock.
RANK_GRACE_S = 60.0


def nccl_skip_reason(ranks: int, device_count: int, nccl_available: bool, first_device: int = 0) -> str | None:
    """Why NCCL with ``ranks`` ranks cannot run on this machine (one rank per CUDA device), or None."""
    if not nccl_available:
        return "torch: this torch build has no NCCL backend"
    need = max(2, ranks)
    have = max(0, device_count - first_device)
    if have < need:
        where = f" from cuda:{first_device} on" if first_device else ""
        return (f"torch: NCCL with {ranks} ranks needs ≥ {need} CUDA devices (one rank per device), "
                f"found {have}{where}")
    return None


def _device_index(device) -> int:
    parts = device.id.split(":")
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def unsupported(backend, spec, params, device) -> str | None:
    """gloo needs torch.distributed; NCCL needs one CUDA device per rank; several nodes need torchrun."""
    torch = backend.torch
    dist = torch.distributed
    if not dist.is_available():
        return "torch: this torch build has no torch.distributed"
    if dist.is_initialized():  # one rank of a torchrun job: the group is the case
        if dist.get_world_size() != params["ranks"]:
            return f"torch: the process group has {dist.get_world_size()} ranks, the case asks for {params['ranks']}"
        return None
    if params.get("nodes", 1) > 1:
        return (f"torch: {params['nodes']} nodes run through torchrun's rendezvous "
                "(torchrun ... -m gpubench.collective), not inside one worker")
    if device.kind == "cpu":
        return None if dist.is_gloo_available() else "torch: this torch build has no gloo backend"
    if device.kind == "cuda":
        return nccl_skip_reason(params["ranks"], torch.cuda.device_count(), dist.is_nccl_available(),
                                _device_index(device))
    return f"torch: {spec.workload} runs on cpu (gloo) or cuda (NCCL), not on {device.kind}"


def build(backend, spec, params, inputs, device) -> CollectiveSession:
    """The group of ranks of one case, launched and connected (or this process, inside a torchrun job)."""
    lay = layout(spec.workload, params, spec.dtype)
    seed, bound = int(inputs["seed"][0]), int(inputs["bound"][0])
    if backend.torch.distributed.is_initialized():
        return GroupSession(backend.torch, lay, seed, bound, spec.dtype, device)
    return SpawnedSession(backend.torch, lay, seed, bound, spec.dtype, device,
                          params.get("timeout_s", DEFAULT_TIMEOUT_S))


def _timing(reply: dict[str, Any]) -> RankTiming:
    return RankTiming(tuple(reply["samples"]), tuple(reply["host_samples"]), int(reply["warmup_calls"]),
                      bool(reply["target_met"]), float(reply["elapsed_s"]))


class GroupSession(CollectiveSession):
    """This process is one rank of an initialized process group (a torchrun job)."""

    def __init__(self, torch, lay, seed, bound, dtype, device):
        from gpubench.backends.torch_backend.collective_rank import CollectiveBench, comm_backend, rank_info

        self.torch = torch
        if device.kind == "cuda":
            local = int(os.environ.get("LOCAL_RANK", torch.cuda.current_device()))
            tdev = torch.device("cuda", local)
            torch.cuda.set_device(tdev)
        else:
            tdev = torch.device("cpu")
        self.tdev = tdev
        self.bench = CollectiveBench(torch, lay, seed, bound, dtype, tdev)
        self.clock = "cuda_event" if tdev.type == "cuda" else "perf_counter"
        self.info = {**rank_info(torch, tdev), "launcher": "torchrun (torch.distributed.run)",
                     "comm_backend": comm_backend(tdev.type)}

    def verify(self) -> np.ndarray:
        with _group_timeout_is_case_timeout("verification"):
            wrong, checksum = self.bench.verify()
            mine = self.torch.tensor([[float(wrong), checksum]], dtype=self.torch.float64, device=self.tdev)
            every = self.torch.empty((self.bench.world, 2), dtype=self.torch.float64, device=self.tdev)
            self.bench.gather(every, mine)
            return every.cpu().numpy()

    def time(self, settings: HarnessSettings) -> RankTiming:
        with _group_timeout_is_case_timeout("timing"):
            return _timing(self.bench.time(settings))


@contextlib.contextmanager
def _group_timeout_is_case_timeout(step: str):
    """Inside a torchrun job the process group's timeout is the case's clock: its expiry is a ``timeout``."""
    from gpubench.backends.torch_backend.collective_rank import is_comm_timeout

    try:
        yield
    except Exception as exc:
        if is_comm_timeout(exc):
            raise CaseTimeout(f"{step}: {str(exc).strip().splitlines()[0][:300]}") from exc
        raise


class SpawnedSession(CollectiveSession):
    """N rank processes started with ``torch.multiprocessing.start_processes``, driven over pipes."""

    def __init__(self, torch, lay, seed, bound, dtype, device, timeout_s: float,
                 bench: tuple[str, dict[str, Any]] | None = None, ranks: int | None = None):
        """Launch the ranks of the collective ``lay``, or (``bench``, ``ranks``) ``ranks`` ranks that each build
        ``bench`` (``("module:Class", kwargs)``, see :func:`~.collective_rank.make_bench`)."""
        import multiprocessing

        import torch.distributed as dist
        import torch.multiprocessing as tmp

        from gpubench.backends.torch_backend.collective_rank import comm_backend, spawned_rank

        self.ranks = ranks if bench is not None else lay.ranks
        self.timeout_s = float(timeout_s)
        self.clock = "cuda_event" if device.kind == "cuda" else "perf_counter"
        self.context = None
        self.conns: list[Any] = []
        # The rendezvous: a TCP store served by this process on a port the kernel picked.
        self.store = dist.TCPStore("127.0.0.1", 0, None, is_master=True,
                                   timeout=datetime.timedelta(seconds=self.timeout_s + LAUNCH_ALLOWANCE_S),
                                   wait_for_workers=False)
        try:
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
            cfg = {"parent_pid": os.getpid(), "host": "127.0.0.1", "port": self.store.port, "ranks": self.ranks,
                   "layout": lay, "seed": seed, "bound": bound, "dtype": dtype, "device_kind": device.kind,
                   "device_base": _device_index(device), "threads": max(1, cores // self.ranks),
                   "timeout_s": self.timeout_s, "bench": bench,
                   "group_timeout_s": self.timeout_s + LAUNCH_ALLOWANCE_S + RANK_GRACE_S}
            pipes = [multiprocessing.get_context("spawn").Pipe() for _ in range(self.ranks)]
            self.conns = [parent for parent, _ in pipes]
            self.context = tmp.start_processes(spawned_rank, args=(cfg, [child for _, child in pipes]),
                                               nprocs=self.ranks, join=False, start_method="spawn")
            for _, child in pipes:
                child.close()
            infos = self._gather("launch", self.timeout_s + LAUNCH_ALLOWANCE_S)
        except BaseException:
            self.kill()
            raise
        self.info = {**infos[0], "launcher": "torch.multiprocessing.start_processes (spawn)",
                     "comm_backend": comm_backend(device.kind), "rendezvous": "TCPStore on 127.0.0.1 (free port)"}

    @property
    def pids(self) -> list[int]:
        """Process ids of the ranks (empty before the launch)."""
        return [p.pid for p in self.context.processes] if self.context is not None else []

    def _send(self, name: str, arg: Any = None) -> None:
        for r, conn in enumerate(self.conns):
            try:
                conn.send((name, arg))
            except (BrokenPipeError, OSError) as exc:
                raise RuntimeError(f"rank {r} is gone: {self._death(r)}") from exc

    def _death(self, r: int) -> str:
        """Why rank ``r`` ended: the exception it raised (from torch's error file), or its exit status."""
        proc = self.context.processes[r]
        proc.join(timeout=1.0)
        path = self.context.error_files[r]
        if path and os.path.exists(path):
            import pickle

            try:
                with open(path, "rb") as fh:
                    text = str(pickle.load(fh)).strip().splitlines()
                return text[-1][:300] if text else "raised an exception"
            except Exception:  # noqa: BLE001
                pass
        code = proc.exitcode
        if code is not None and code < 0:
            return f"killed by {signal.Signals(-code).name}" if -code in signal.Signals._value2member_map_ \
                else f"killed by signal {-code}"
        return f"exited with status {code}"

    def _gather(self, step: str, limit_s: float) -> list[Any]:
        """One reply from every rank within ``limit_s`` seconds; kill every rank on an error or past the limit."""
        from multiprocessing.connection import wait

        deadline = time.monotonic() + limit_s
        replies: list[Any] = [None] * self.ranks
        pending = set(range(self.ranks))
        try:
            while pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CaseTimeout(f"{step}: rank{'s' if len(pending) > 1 else ''} "
                                      f"{', '.join(map(str, sorted(pending)))} gave no answer within {limit_s:g} s; "
                                      f"all {self.ranks} ranks killed")
                watched = {self.conns[r]: r for r in pending}
                sentinels = {self.context.processes[r].sentinel: r for r in pending}
                for ready in wait([*watched, *sentinels], timeout=left):
                    r = watched.get(ready)
                    if r is None:
                        r = sentinels[ready]
                        if r not in pending or self.conns[r].poll():
                            continue  # its last words are in the pipe: read them there
                        raise RuntimeError(f"{step}: rank {r} {self._death(r)}")
                    if r not in pending:
                        continue
                    try:
                        kind, value = self.conns[r].recv()
                    except (EOFError, OSError) as exc:
                        raise RuntimeError(f"{step}: rank {r} {self._death(r)}") from exc
                    if kind == "error":
                        raise RuntimeError(f"{step}: rank {r}: {value}")
                    replies[r] = value
                    pending.discard(r)
        except BaseException:
            self.kill()
            raise
        return replies

    def verify(self) -> np.ndarray:
        self._send("verify")
        return np.array(self._gather("verification", self.timeout_s), dtype=np.float64)

    def time(self, settings: HarnessSettings) -> RankTiming:
        from dataclasses import asdict

        self._send("time", asdict(settings))
        return _timing(self._gather("timing", self.timeout_s)[0])

    def kill(self) -> None:
        """SIGKILL every rank that is still alive and reap them all (never raises)."""
        procs = self.context.processes if self.context is not None else []
        for proc in procs:
            if proc.is_alive():
                try:
                    os.kill(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        for proc in procs:
            proc.join(timeout=5.0)
        self._release()

    def _release(self) -> None:
        for conn in self.conns:
            try:
                conn.close()
            except OSError:
                pass
        self.conns = []
        if self.context is not None:
            for path in self.context.error_files:
                if path and os.path.exists(path):
                    try:
                        os.unlink(path)
                    except OSError:
                        pass
        self.store = None

    def close(self) -> None:
        """Ask every rank to leave the group, then kill whatever did not exit within the grace period."""
        if self.context is None:
            return
        if self.conns:
            try:
                self._send("stop")
            except RuntimeError:
                pass
            deadline = time.monotonic() + STOP_GRACE_S
            for proc in self.context.processes:
                proc.join(timeout=max(0.0, deadline - time.monotonic()))
        self.kill()

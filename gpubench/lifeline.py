"""Process lifetimes: a child that dies with its parent, nothing left behind, and whether a recorded process lives.

``gpubench run`` starts one worker process per backend, and a worker may start processes of
its own (the ranks of a distributed workload, a compiler, a library's helper process). If
``gpubench run`` is killed with SIGKILL nothing of it runs to clean up, so each such process
must see to its own end: :func:`die_with_parent` asks the kernel to kill the calling process
when its parent exits (``PR_SET_PDEATHSIG`` on Linux) and starts a watchdog thread that does the
same wherever that is not available, or when the pipe to the parent is closed.

When a worker ends, normally or killed on a timeout, nothing it started, directly or not, may
outlive it, including processes that left its process group (``setsid``, a daemon's double
fork). Without cgroups, three things see to it (:mod:`gpubench.workerproc` uses them):

* the worker is a child subreaper (:func:`become_subreaper`, Linux ``PR_SET_CHILD_SUBREAPER``):
  a descendant whose parent exits is re-parented to the worker, not to init, so every process it
  started stays in its process tree while it lives;
* that tree is stopped and killed as a whole (:func:`kill_tree`): each process found is stopped
  with SIGSTOP first, so none can fork or exit-and-orphan while the tree is walked, then all are
  killed — by the worker itself when it exits (:func:`kill_descendants`), by its starter when it
  kills the worker;
* every process the worker starts inherits a token in its environment (:data:`WORKER_TOKEN_ENV`);
  after the worker is gone, any process still carrying the token (one that escaped the tree
  while the worker crashed) is found in ``/proc`` and killed (:func:`processes_with_token`).

:func:`process_alive` answers the opposite question for the store: is the process that began a
run (pid and start time recorded) still running, or was the run abandoned?
"""

from __future__ import annotations

import os
import select
import signal
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime

#: Environment variable through which ``gpubench run`` tells a worker its pid (for :func:`die_with_parent`).
PARENT_PID_ENV = "GPUBENCH_PARENT_PID"

#: Environment variable carrying a worker's token to every process it starts (see :func:`processes_with_token`).
WORKER_TOKEN_ENV = "GPUBENCH_WORKER_TOKEN"

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
#: Rounds of the stop-walk in :func:`kill_tree` (each finds the processes forked since the last).
_MAX_ROUNDS = 50


def _set_parent_death_signal() -> bool:
    """Ask the Linux kernel to SIGKILL this process when its parent exits; False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _die() -> None:
    """End this process now, with every process it started and the process group it leads."""
    kill_descendants()
    try:
        if os.getpgrp() == os.getpid():
            os.killpg(0, signal.SIGKILL)
    except OSError:
        pass
    os.kill(os.getpid(), signal.SIGKILL)


def become_subreaper() -> bool:
    """Make orphaned descendants of the calling process its children, not init's (Linux); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _proc_files(leaf: str) -> Iterator[tuple[int, bytes]]:
    """``(pid, contents of /proc/PID/leaf)`` of every process ``/proc`` shows and lets this one read (none
    where there is no ``/proc``)."""
    try:
        names = os.listdir("/proc")
    except OSError:
        return
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/{leaf}", "rb") as f:
                data = f.read()
        except OSError:
            continue
        yield int(name), data


def _parents() -> dict[int, int]:
    """Every process's parent, from ``/proc/PID/stat`` (empty where there is no ``/proc``)."""
    out: dict[int, int] = {}
    for pid, stat in _proc_files("stat"):
        try:
            out[pid] = int(stat.rpartition(b")")[2].split()[1])
        except (ValueError, IndexError):
            continue
    return out


def descendants(root: int) -> set[int]:
    """The processes below ``root`` in the process tree now (not ``root`` itself)."""
    children: dict[int, list[int]] = {}
    for pid, ppid in _parents().items():
        children.setdefault(ppid, []).append(pid)
    out: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in out and child != root:
                out.add(child)
                todo.append(child)
    return out


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _stop_and_kill(find) -> set[int]:
    """Stop every process ``find()`` returns, again until it returns no new one, then SIGKILL them all."""
    stopped: set[int] = set()
    for _ in range(_MAX_ROUNDS):
        new = find() - stopped - {os.getpid()}
        if not new:
            break
        for pid in new:
            _signal(pid, signal.SIGSTOP)
        stopped |= new
    for pid in stopped:
        _signal(pid, signal.SIGKILL)
    return stopped


def kill_tree(root: int, include_root: bool = True) -> set[int]:
    """SIGKILL every process below ``root`` (and ``root`` when ``include_root``); return the pids killed.

    ``root`` is stopped first, then each descendant as it is found, so that none forks a process
    the walk would miss; the walk repeats until it finds no new process. Run by ``root``'s parent,
    or (``include_root=False``) by ``root`` itself.
    """
    if include_root and root != os.getpid():
        _signal(root, signal.SIGSTOP)
    killed = _stop_and_kill(lambda: descendants(root))
    if include_root and root != os.getpid():
        _signal(root, signal.SIGKILL)
        killed.add(root)
    return killed


def kill_descendants() -> set[int]:
    """Kill every process the calling process started, directly or not, that still runs; reap its children.

    A worker calls it as it exits: as a subreaper (:func:`become_subreaper`) it is the parent of
    every orphan among them, so none is left to init.
    """
    killed = kill_tree(os.getpid(), include_root=False)
    while killed:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                break
        except ChildProcessError:
            break
    return killed


def processes_with_token(token: str) -> set[int]:
    """The processes whose environment holds ``WORKER_TOKEN_ENV=token`` (those of this user that ``/proc`` shows)."""
    if not token:
        return set()
    needle = f"{WORKER_TOKEN_ENV}={token}".encode()
    return {pid for pid, env in _proc_files("environ") if needle in env.split(b"\0")}


def kill_token(token: str) -> set[int]:
    """Stop and kill every process that carries ``token`` (:func:`processes_with_token`); return their pids."""
    return _stop_and_kill(lambda: processes_with_token(token))


def _watch(parent_pid: int, pipe_fd: int | None, poll_s: float | None) -> None:
    """Die when the parent changes (checked every ``poll_s``; None: never) or the pipe is hung up."""
    poller = None
    if pipe_fd is not None and hasattr(select, "poll"):
        poller = select.poll()
        # Only hang-up and error events: the data on the pipe belongs to the main thread.
        poller.register(pipe_fd, select.POLLHUP | select.POLLERR)
    while True:
        if os.getppid() != parent_pid:
            _die()
        if poller is not None:
            events = poller.poll(None if poll_s is None else poll_s * 1000)
            if any(ev & (select.POLLHUP | select.POLLERR | select.POLLNVAL) for _, ev in events):
                _die()
        else:
            time.sleep(poll_s if poll_s is not None else 3600)


def die_with_parent(parent_pid: int | None = None, *, pipe_fd: int | None = None, poll_s: float = 0.5) -> None:
    """Make the calling process die (SIGKILL) as soon as its parent process exits, however it exits.

    Call it first thing in any process that gpubench, or a gpubench worker, starts (for example
    each rank of a distributed workload). On Linux the kernel delivers the signal
    (``prctl(PR_SET_PDEATHSIG, SIGKILL)``). A daemon watchdog thread also ends the process when,
    given ``pipe_fd`` (the read end of a pipe from the parent), the parent closes that pipe and,
    where the kernel cannot watch the parent, when the parent changes (checked every ``poll_s``
    seconds). When the process leads a process group, the watchdog kills the whole group.

    ``parent_pid`` is the pid the parent had (default: the current parent); pass it when known
    so that a parent that died before this call is noticed, and the process exits at once.
    """
    if parent_pid is None:
        parent_pid = os.getppid()
    kernel_watches = _set_parent_death_signal()
    if os.getppid() != parent_pid:
        _die()
    if kernel_watches and pipe_fd is None:
        return
    # Where the kernel watches the parent, the thread only waits on the pipe: it never wakes up
    # otherwise, so it cannot disturb a measurement.
    threading.Thread(target=_watch, args=(parent_pid, pipe_fd, None if kernel_watches else poll_s),
                     name="gpubench-lifeline", daemon=True).start()


def _process_start_time(pid: int) -> float | None:
    """Wall-clock start time of ``pid`` from ``/proc`` (Linux), or None where unknown."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            stat = f.read()
        with open("/proc/stat", encoding="ascii") as f:
            btime = next(int(line.split()[1]) for line in f if line.startswith("btime "))
        fields = stat.rpartition(")")[2].split()
        return btime + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rpartition(")")[2].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def process_alive(pid: int, started_before: str | None = None) -> bool:
    """Whether process ``pid`` on this machine still runs (a zombie does not).

    With ``started_before`` (an ISO 8601 time, such as a run's ``started_at``), a process with
    that pid that started later is a different process that reuses the number, so the answer
    is False.
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    if _is_zombie(pid):
        return False
    if started_before:
        start = _process_start_time(pid)
        try:
            limit = datetime.fromisoformat(started_before).timestamp()
        except ValueError:
            return True
        # Times in the store have whole seconds; allow a little clock slack.
        if start is not None and start > limit + 2.0:
            return False
    return True

"""Process lifetimes: a child that dies with its parent, and whether a recorded process still lives.

``gpubench run`` starts one worker process per backend, and a worker may start processes of
its own (the ranks of a distributed workload, a compiler). If ``gpubench run`` is killed with
SIGKILL nothing of it runs to clean up, so each such process must see to its own end:
:func:`die_with_parent` asks the kernel to kill the calling process when its parent exits
(``PR_SET_PDEATHSIG`` on Linux) and starts a watchdog thread that does the same wherever that
is not available, or when the pipe to the parent is closed.

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
from datetime import datetime

#: Environment variable through which ``gpubench run`` tells a worker its pid (for :func:`die_with_parent`).
PARENT_PID_ENV = "GPUBENCH_PARENT_PID"

_PR_SET_PDEATHSIG = 1


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
    """End this process now, with the process group it leads (its children that did not set up their own end)."""
    try:
        if os.getpgrp() == os.getpid():
            os.killpg(0, signal.SIGKILL)
    except OSError:
        pass
    os.kill(os.getpid(), signal.SIGKILL)


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

"""The handle of one worker subprocess (``python -m gpubench.worker``): start it, ask it, stop it.

Shared by the runner (one worker per backend, one case at a time) and the backend probes of
``gpubench list``/``env`` (:mod:`gpubench.probe`). The worker dies with the process that started
it (:mod:`gpubench.lifeline`). When it is stopped, by :meth:`Worker.close` after a run as by
:meth:`Worker.kill` on a timeout, nothing it started, directly or not, is left running: the worker
is a child subreaper that kills its descendants as it exits, :meth:`Worker.kill` stops and kills
its whole process tree, and any process still carrying the worker's token in its environment
afterwards is killed too (see :mod:`gpubench.lifeline`). Nor is anything left in the system's
temporary directory: the worker's ``TMPDIR`` is a private directory (:data:`TMP_PREFIX`), removed
when the worker is stopped, however it ended (TensorFlow's autograph writes its generated
``__autograph_generated_file*.py`` there and removes them only at a normal exit), and any such
directory whose starter is gone is removed when the next worker starts.
"""

from __future__ import annotations

import json
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from gpubench.lifeline import PARENT_PID_ENV, WORKER_TOKEN_ENV, kill_token, kill_tree, process_alive

#: Name of a worker's private temporary directory: this prefix, the pid of the process that started it, a suffix.
TMP_PREFIX = "gpubench-worker-"

#: Longest single wait on a worker's pipe (selectors cannot wait for an unlimited or huge time).
_MAX_WAIT_S = 60.0


class WorkerDied(Exception):
    """The worker exited or stopped answering."""


def remove_stale_tmpdirs(root: str | None = None) -> list[str]:
    """Remove the private temporary directories of workers whose starter no longer runs (killed outright);
    return their paths. Only this user's directories are touched."""
    removed = []
    for d in Path(root or tempfile.gettempdir()).glob(f"{TMP_PREFIX}*"):
        pid = d.name[len(TMP_PREFIX):].partition("-")[0]
        try:
            mine = d.is_dir() and not d.is_symlink() and d.stat().st_uid == os.getuid()
        except OSError:
            continue
        if mine and pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(str(d))
    return removed


class Worker:
    """A ``python -m gpubench.worker`` subprocess serving one backend."""

    def __init__(self, backend: str):
        self.backend = backend
        self.stderr = tempfile.TemporaryFile(mode="w+b")
        env = dict(os.environ)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        env[PARENT_PID_ENV] = str(os.getpid())
        self.token = secrets.token_hex(16)
        """Inherited by every process the worker starts: what finds those that left its process tree."""
        env[WORKER_TOKEN_ENV] = self.token
        remove_stale_tmpdirs()
        self.tmpdir = tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{os.getpid()}-")
        """The worker's ``TMPDIR`` (and that of everything it starts), removed when the worker is stopped."""
        env["TMPDIR"] = self.tmpdir
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gpubench.worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=self.stderr, env=env, start_new_session=True,
            )
        except BaseException:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            raise
        self.sel = selectors.DefaultSelector()
        assert self.proc.stdout is not None
        self.sel.register(self.proc.stdout, selectors.EVENT_READ)
        self._buf = b""

    def request(self, payload: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send one request and wait up to ``timeout`` seconds (``math.inf``: no limit) for its reply."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write((json.dumps(payload) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise WorkerDied(self.death_reason()) from exc
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            if not self.sel.select(min(left, _MAX_WAIT_S)):
                continue
            chunk = os.read(self.proc.stdout.fileno(), 1 << 20)
            if not chunk:
                self.proc.wait(timeout=5)
                raise WorkerDied(self.death_reason())
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return json.loads(line)

    def stderr_tail(self, limit: int = 300) -> str:
        """The last non-empty line of the worker's stderr (for error messages)."""
        self.stderr.seek(0)
        lines = [ln for ln in self.stderr.read().decode(errors="replace").splitlines() if ln.strip()]
        return lines[-1][-limit:] if lines else ""

    def death_reason(self) -> str:
        """Why the worker ended, as one line."""
        code = self.proc.poll()
        if code is None:
            return "worker stopped answering"
        if code < 0:
            sig = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
            what = f"worker killed by {sig}"
            if -code == signal.SIGKILL:
                what += " (out of memory?)"
        else:
            what = f"worker exited with status {code}"
        tail = self.stderr_tail()
        return f"{what}: {tail}" if tail else what

    def kill(self) -> None:
        """Stop the worker and everything it started, directly or not (also what left its process group)."""
        if self.proc.poll() is None:
            kill_tree(self.proc.pid)  # stopped, then killed, with every descendant
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self.proc.kill()
        self.proc.wait()
        kill_token(self.token)  # what escaped the tree (its parent died before the worker became its reaper)
        shutil.rmtree(self.tmpdir, ignore_errors=True)
        self.close_files()

    def close(self) -> None:
        """Ask the worker to exit (stdin closed), killing it if it does not."""
        if self.proc.poll() is None and self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.kill()

    def close_files(self) -> None:
        self.sel.close()
        for f in (self.proc.stdout, self.proc.stdin):
            if f is not None and not f.closed:
                f.close()
        self.stderr.close()



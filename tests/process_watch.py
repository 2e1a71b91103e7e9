"""Watch the process tree during a test: every process a test started must be gone after it.

A rank or worker re-parented to init after its parent died would no longer show as a child, so the
watch records every descendant it sees while active and checks each of them afterwards.
``tests/conftest.py`` makes it the ``watch`` fixture.
"""

from __future__ import annotations

import threading
import time

import psutil


class ProcessWatch:
    """Records every descendant of this process while active; :meth:`survivors` lists those still running."""

    def __init__(self):
        self.me = psutil.Process()
        self.seen: dict[int, tuple[float, str]] = {}
        self.before: set[tuple[int, float]] = set()
        """Descendants there before the watch began (another test's): not this test's to answer for."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self):
        while not self._stop.is_set():
            self.snapshot()
            time.sleep(0.1)

    def snapshot(self):
        for p in self.me.children(recursive=True):
            try:
                cmd = " ".join(p.cmdline())
                # multiprocessing's resource tracker serves this test process for its whole life.
                if "resource_tracker" in cmd and p.ppid() == self.me.pid:
                    continue
                created = p.create_time()
                if (p.pid, created) in self.before:
                    continue
                # The latest command line: a process seen between its fork and its exec still shows its parent's;
                # one that is exiting shows none (keep what it was).
                if cmd or p.pid not in self.seen:
                    self.seen[p.pid] = (created, cmd)
            except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                pass

    def __enter__(self):
        for p in self.me.children(recursive=True):
            try:
                self.before.add((p.pid, p.create_time()))
            except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                pass
        self.snapshot()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def ranks_seen(self) -> list[int]:
        return [pid for pid, (_, cmd) in self.seen.items() if "multiprocessing.spawn" in cmd
                or "gpubench.collective" in cmd]

    def survivors(self, wait_s: float = 10.0) -> list[str]:
        """Processes seen that still run after ``wait_s`` seconds (zombies count as gone)."""
        deadline = time.monotonic() + wait_s
        while True:
            alive = []
            for pid, (created, cmd) in self.seen.items():
                try:
                    p = psutil.Process(pid)
                    if p.create_time() == created and p.status() != psutil.STATUS_ZOMBIE:
                        alive.append(f"{pid}: {cmd[:120]}")
                except psutil.NoSuchProcess:
                    pass
            if not alive or time.monotonic() > deadline:
                return alive
            time.sleep(0.2)

    def kill_survivors(self):
        for pid, (created, _) in self.seen.items():
            try:
                p = psutil.Process(pid)
                if p.create_time() == created:
                    p.kill()
            except psutil.NoSuchProcess:
                pass

"""After a run, nothing a backend started is left: not after success, a timeout or a worker's crash.

The fake plug-in's ``spawn`` variants (tests/plugins) start a helper in a session of its own and a
double-forked daemon when the op is built, as some libraries start helper processes; neither is
in the worker's process group, and the daemon is not even the worker's child.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from conftest import REPO, run_gpubench

from gpubench.lifeline import descendants, kill_tree, process_alive


def suite_file(tmp_path, variant: str):
    path = tmp_path / f"{variant}.toml"
    path.write_text(f'name = "{variant}"\nbaseline = "fake"\n[[cases]]\nworkload = "matmul"\nbackends = ["fake"]\n'
                    f'variants = ["{variant}"]\ndtypes = ["float64"]\nparams = {{ size = [8] }}\n')
    return path


def helper_pids(where) -> list[int]:
    return [int(p.read_text()) for p in where.iterdir() if not p.name.endswith(".tmp")]


def assert_all_gone(pids: list[int]) -> None:
    deadline = time.monotonic() + 5
    while any(process_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = [p for p in pids if process_alive(p)]
    for p in left:  # never leave them behind, whatever the outcome
        os.kill(p, signal.SIGKILL)
    assert not left, f"{len(left)} process(es) a backend started outlived the run"


@pytest.mark.parametrize("variant, status, timeout, runs", [
    ("spawn", "ok", "60", 3),            # the normal path, several times (it was left 2 to 5 times in 6)
    ("spawn_hang", "timeout", "3", 1),   # killed on the timeout
    ("spawn_crash", "error", "60", 1),   # the worker dies on its own: its orphans went to init
])
def test_nothing_a_backend_started_outlives_the_run(fake_plugin, tmp_path, store_path, variant, status, timeout, runs):
    where = tmp_path / "spawned"
    where.mkdir()
    suite = suite_file(tmp_path, variant)
    for _ in range(runs):
        got = run_gpubench("run", "--suite", str(suite), "--quick", "--timeout", timeout,
                           env={"GPUBENCH_FAKE_SPAWN_DIR": str(where)}, cwd=REPO)
        assert status in got.stdout, got.stdout + got.stderr
    pids = helper_pids(where)
    assert len(pids) == 2 * runs  # a session leader and a daemon per run
    assert_all_gone(pids)


def test_kill_tree_stops_a_forking_tree_and_kills_it_whole():
    import subprocess
    import sys

    # A process whose children keep forking grandchildren that detach (setsid) and outlive their parents.
    code = ("import os, time\n"
            "for _ in range(5):\n"
            "    if os.fork() == 0:\n"
            "        os.setsid()\n"
            "        if os.fork() == 0:\n"
            "            time.sleep(600)\n"
            "        time.sleep(600)\n"
            "time.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 20
        while len(descendants(proc.pid)) < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        below = descendants(proc.pid)
        assert len(below) == 10
        killed = kill_tree(proc.pid)
        assert killed == below | {proc.pid}
        proc.wait(timeout=10)
        assert_all_gone(list(below))
    finally:
        proc.kill()


def test_kill_descendants_as_a_subreaper_reaches_orphans():
    import subprocess
    import sys

    # A subreaper (as the worker is) whose child starts a daemon and exits: the daemon is re-parented to it,
    # and kill_descendants, run by the subreaper itself, kills it.
    code = ("import os, subprocess, sys, time\n"
            "from gpubench.lifeline import become_subreaper, descendants, kill_descendants\n"
            "assert become_subreaper()\n"
            "subprocess.run([sys.executable, '-c', 'import os, time\\nif os.fork() == 0:\\n    os.setsid()\\n"
            "    time.sleep(600)\\n'])\n"
            "deadline = time.monotonic() + 10\n"
            "while not descendants(os.getpid()) and time.monotonic() < deadline:\n"
            "    time.sleep(0.01)\n"
            "(daemon,) = descendants(os.getpid())\n"
            "print(daemon, flush=True)\n"
            "assert kill_descendants() == {daemon}\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert_all_gone([int(out.stdout.split()[0])])


def system_tmp(tmp_path, monkeypatch):
    """A system temporary directory of this test's own (for this process and the workers it starts)."""
    import tempfile

    where = tmp_path / "systmp"
    where.mkdir()
    monkeypatch.setenv("TMPDIR", str(where))
    monkeypatch.setattr(tempfile, "tempdir", str(where))
    return where


@pytest.mark.parametrize("stop", ["kill", "close"])
def test_tensorflow_leaves_nothing_in_the_system_temp_dir(tmp_path, monkeypatch, stop):
    # TensorFlow's autograph writes __autograph_generated_file*.py into the temp dir and removes them only at a
    # normal exit: a worker killed on a timeout (or Ctrl-C) left them behind.
    import json
    from dataclasses import asdict

    from gpubench.harness import HarnessSettings
    from gpubench.records import CaseSpec
    from gpubench.workerproc import Worker

    pytest.importorskip("tensorflow")
    where = system_tmp(tmp_path, monkeypatch)
    worker = Worker("tensorflow")
    try:
        spec = CaseSpec.make("saxpy", "tensorflow", "cpu", "float32", {"n": 4096})
        settings = HarnessSettings(warmup_s=0.0, min_samples=3, max_samples=3, budget_s=0.05)
        reply = worker.request({"op": "case", "spec": spec.to_dict(), "settings": asdict(settings)}, 300)
        assert reply["status"] == "ok", json.dumps(reply)[:500]
        generated = list(where.rglob("__autograph_generated_file*.py"))
        assert generated, "the case ran no autograph conversion: this test proves nothing"
        assert all(p.parent != where for p in generated), "written straight into the system temp dir"
    finally:
        worker.kill() if stop == "kill" else worker.close()
    assert list(where.iterdir()) == []


def test_a_killed_runners_worker_tmpdir_is_removed_by_the_next_worker(tmp_path, monkeypatch):
    import subprocess
    import sys

    from gpubench.workerproc import TMP_PREFIX, Worker

    where = system_tmp(tmp_path, monkeypatch)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = where / f"{TMP_PREFIX}{int(gone.stdout)}-abc"
    (stale / "sub").mkdir(parents=True)
    (stale / "sub" / "__autograph_generated_filex.py").write_text("x = 1\n")
    live = where / f"{TMP_PREFIX}{os.getpid()}-def"  # a worker of a runner that still runs: kept
    live.mkdir()
    worker = Worker("numpy")
    worker.close()
    assert not stale.exists() and live.exists()

"""Processes die with their parent: SIGKILL of ``gpubench run`` takes its worker and the worker's children.

Issue 11, defect 4, and the ``abandoned`` state of a run whose process is gone (defect 3).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from conftest import REPO, install_plugin, run_gpubench

from gpubench.lifeline import process_alive

HANG_OPS = '''
import os
import subprocess
import sys
import time

from gpubench.backends.base import BoundOp

VARIANTS = ("default",)

RANK = "from gpubench.lifeline import die_with_parent; die_with_parent(); import os, sys, time; " \\
       "open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(3600)"


def build(backend, spec, params, inputs, device):
    def call():
        # Like a distributed workload: start a "rank" process, then work (here: forever).
        out = os.environ["LIFELINE_DIR"]
        subprocess.Popen([sys.executable, "-c", RANK, os.path.join(out, "rank.pid")])
        with open(os.path.join(out, "worker.pid"), "w") as f:
            f.write(str(os.getpid()))
        time.sleep(3600)
    return BoundOp(call=call, result=lambda: None)
'''

HANG_BACKEND = '''
from gpubench.backends.base import Backend, DeviceInfo


class Hang(Backend):
    device_kinds = ("cpu",)
    ops_package = "gpubench_lifeline_test.ops"

    def devices(self):
        return [DeviceInfo("cpu", "hang cpu", "cpu")]
'''


def test_sigkill_of_run_kills_its_worker_and_the_workers_children(tmp_path, monkeypatch, store_path):
    install_plugin(monkeypatch, tmp_path / "plugins", {"hang": "gpubench_lifeline_test:Hang"},
                   {"gpubench_lifeline_test/__init__.py": HANG_BACKEND,
                    "gpubench_lifeline_test/ops/__init__.py": "",
                    "gpubench_lifeline_test/ops/matmul.py": HANG_OPS}, dist="gpubench_lifeline_test")
    suite = tmp_path / "hang.toml"
    suite.write_text('name = "hang"\nbaseline = "numpy"\n[[cases]]\nworkload = "matmul"\nbackends = ["hang"]\n'
                     'dtypes = ["float64"]\nparams = { size = [8] }\n')
    out = tmp_path / "pids"
    out.mkdir()
    env = dict(os.environ, LIFELINE_DIR=str(out))
    proc = subprocess.Popen([sys.executable, "-m", "gpubench", "run", "--suite", str(suite)], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pids: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while not ((out / "worker.pid").exists() and (out / "rank.pid").exists()) and time.monotonic() < deadline:
            time.sleep(0.1)
        pids = [int((out / name).read_text()) for name in ("worker.pid", "rank.pid")]
        worker, rank = pids
        assert process_alive(worker) and process_alive(rank)

        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 5
        while (process_alive(worker) or process_alive(rank)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not process_alive(worker), "the worker outlived gpubench run"
        assert not process_alive(rank), "a process the worker started outlived it"
    finally:  # never leave a hanging process behind, whatever failed
        proc.kill()
        for pid in pids:
            if process_alive(pid):
                os.kill(pid, signal.SIGKILL)

    # The run's process is gone: it reads as abandoned, never as running forever.
    runs = run_gpubench("runs", "--json")
    assert runs.returncode == 0, runs.stderr
    (run,) = json.loads(runs.stdout)
    assert run["status"] == "abandoned" and f"pid {proc.pid}" in run["reason"]
    shown = run_gpubench("show")
    assert shown.returncode == 0 and shown.stdout.split("\n")[0].endswith("abandoned")


def test_a_child_whose_parent_is_already_gone_exits_at_once():
    code = "from gpubench.lifeline import die_with_parent; die_with_parent(parent_pid=1); import time; time.sleep(60)"
    proc = subprocess.run([sys.executable, "-c", code], timeout=30)
    assert proc.returncode == -signal.SIGKILL


def test_a_child_dies_when_its_parent_closes_the_pipe():
    code = ("import sys; from gpubench.lifeline import die_with_parent; die_with_parent(pipe_fd=0, poll_s=0.1); "
            "print('ready', flush=True); import time; time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"
    assert proc.poll() is None
    proc.stdin.close()
    assert proc.wait(timeout=10) == -signal.SIGKILL


def test_process_alive_sees_through_pid_reuse():
    assert process_alive(os.getpid())
    assert process_alive(os.getpid(), "2999-01-01T00:00:00+00:00")
    # This process started after 2000: a run recorded then under this pid was another process.
    assert not process_alive(os.getpid(), "2000-01-01T00:00:00+00:00")
    assert not process_alive(0) and not process_alive(2**22 + 12345)

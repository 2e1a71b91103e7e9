"""A run that cannot go on ends ``failed`` with its reason, in one line and a non-zero exit.

Issue 11, defect 3: hostile limits, a full disk (a file size limit in a child process, and a
real full filesystem where this machine lets us mount one), and an error of the runner itself.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, run_gpubench

from gpubench.errors import RunFailed
from gpubench.profile import QUICK
from gpubench.records import CaseSpec
from gpubench.runner import Runner
from gpubench.store import ResultStore

MANY = """
name = "many"
baseline = "numpy"
{extra}
[[cases]]
workload = "saxpy"
backends = ["numpy"]
dtypes = ["float32"]
params = {{ n = {sizes} }}
"""


def many_suite(tmp_path: Path, n: int = 30, extra: str = "") -> str:
    path = tmp_path / "many.toml"
    path.write_text(MANY.format(sizes=list(range(1000, 1000 + n)), extra=extra))
    return str(path)


def error_lines(stderr: str) -> list[str]:
    assert "Traceback" not in stderr, stderr
    return [ln for ln in stderr.splitlines() if ln.startswith("gpubench: error:")]


# --- limits ------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["--timeout", "nan"], "--timeout must be a positive number of seconds, or inf for no limit, got nan"),
    (["--timeout", "0"], "--timeout must be a positive number of seconds, or inf for no limit, got 0"),
    (["--budget", "inf"], "--budget must be a positive finite number of seconds, got inf"),
    (["--budget", "nan"], "--budget must be a positive finite number of seconds, got nan"),
    (["--target", "inf"], "--target must be a fraction between 0 and 1 (0.01 means ±1 %), got inf"),
    (["--target", "-0.1"], "--target must be a fraction between 0 and 1 (0.01 means ±1 %), got -0.1"),
])
def test_bad_limits_exit_2_in_one_line(store_path, cli, args, message):
    code, _, err = cli("run", "--suite", "saxpy", "--backend", "numpy", *args)
    assert code == 2 and err == f"gpubench: error: {message}\n"
    assert not store_path.exists()


def test_calibrate_rejects_a_nan_timeout(store_path, cli):
    code, _, err = cli("calibrate", "--timeout", "nan")
    assert code == 2 and "--timeout must be a positive number" in err and not store_path.exists()


def test_a_nan_suite_timeout_is_refused(store_path, cli, tmp_path):
    code, _, err = cli("run", "--suite", many_suite(tmp_path, 2, "timeout_s = nan"))
    assert code == 2 and "'timeout_s' must be a positive number (inf for no limit)" in err


@pytest.mark.parametrize("how", [["--timeout", "inf"], ["--timeout", "1e308"], []])
def test_infinite_and_huge_timeouts_run(store_path, tmp_path, how):
    extra = "" if how else "timeout_s = inf"
    proc = run_gpubench("run", "--suite", many_suite(tmp_path, 2, extra), "--quick", *how)
    assert proc.returncode == 0, proc.stderr
    with ResultStore(store_path, readonly=True) as store:
        run = store.run()
        assert run.status == "complete" and [r.status for r in store.results(run.id)] == ["ok", "ok"]
        assert run.settings["timeout_s"] == (1e308 if "1e308" in how else None)  # None: no limit


# --- failures of the run itself ----------------------------------------------------------------

def test_an_error_of_the_runner_marks_the_run_failed(tmp_path):
    specs = [CaseSpec.make("saxpy", "numpy", "cpu", "float32", {"n": 1000 + i}) for i in range(4)]

    def progress(done, total, spec, result):
        if done == 2 and result is None:
            raise RuntimeError("progress display broke")

    with ResultStore(tmp_path / "s.sqlite") as store:
        runner = Runner(store, QUICK, timeout_s=60, progress=progress)
        with pytest.raises(RunFailed) as info:
            runner.run(specs, suite="t")
        assert str(info.value) == (f"RuntimeError: progress display broke: 2 finished cases kept in run 1 "
                                   f"(store {store.path})")
        run = store.run()
        assert (run.status, run.reason) == ("failed", "RuntimeError: progress display broke")
        assert store.count_results(run.id) == 2 and run.finished_at


def _limit_file_size(limit: int):
    def preexec():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return preexec


def test_file_size_limit_mid_run_fails_the_run_in_one_line(store_path, tmp_path):
    """A disk that fills up mid-run, portably: the run's process may write no file past 200 kB."""
    proc = subprocess.run([sys.executable, "-m", "gpubench", "run", "--suite", many_suite(tmp_path), "--budget",
                           "0.01"], capture_output=True, text=True, timeout=300, preexec_fn=_limit_file_size(200_000),
                          env=dict(os.environ), cwd=REPO)
    assert proc.returncode == 1
    (line,) = error_lines(proc.stderr)
    with ResultStore(store_path, readonly=True) as store:
        run = store.run()
        kept = store.count_results(run.id)
    assert 0 < kept < 30
    assert line == f"gpubench: error: file size limit reached: {kept} finished cases kept in run 1 (store {store_path})"
    assert run.status == "failed"
    assert run.reason == f"file size limit reached (ulimit -f): cannot write store {store_path}"
    # The store is intact and usable afterwards.
    assert run_gpubench("run", "--suite", many_suite(tmp_path, 2), "--quick").returncode == 0


@pytest.fixture
def small_filesystem(tmp_path):
    """A 256 KiB tmpfs (root only; skipped where mounting is not allowed)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=True)


def test_a_full_disk_mid_run_fails_the_run_in_one_line(small_filesystem, tmp_path):
    store = small_filesystem / "s.sqlite"
    proc = run_gpubench("run", "--suite", many_suite(tmp_path), "--budget", "0.01", "--store", str(store))
    assert proc.returncode == 1
    (line,) = error_lines(proc.stderr)
    with ResultStore(store, readonly=True) as s:
        run = s.run()
        kept = s.count_results(run.id)
    assert 0 < kept < 30
    assert line == f"gpubench: error: disk full: {kept} finished cases kept in run 1 (store {store})"
    assert (run.status, run.reason) == ("failed", f"disk full: cannot write store {store}")
    shown = run_gpubench("runs", "--store", str(store))
    assert shown.returncode == 0 and "failed" in shown.stdout and f"{kept} ok" in shown.stdout

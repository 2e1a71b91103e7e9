"""Worker isolation: crashes, hangs, exceptions and wrong answers become results; the run goes on.

The misbehaving backend is a third-party plug-in (tests/plugins) found through the
``gpubench.backends`` entry point, exactly as a user's plug-in would be.
"""

import os
import signal
import subprocess
import sys
import time

from conftest import REPO

from gpubench.profile import QUICK
from gpubench.records import CaseSpec
from gpubench.runner import Runner
from gpubench.store import ResultStore


def fake(variant, size=8, device="cpu"):
    return CaseSpec.make("matmul", "fake", device, "float64", {"m": size, "n": size, "k": size}, variant, "t")


def test_plugin_is_discovered_like_builtins(fake_plugin, cli):
    from gpubench.backends import backend_names, get_backend

    assert "fake" in backend_names()
    assert get_backend("fake").variants("matmul")[0] == "good"
    code, out, _ = cli("list", "backends")
    assert code == 0 and "fake cpu" in out


def test_every_failure_mode_is_recorded_and_the_run_goes_on(fake_plugin, tmp_path):
    specs = [fake("good"), fake("wrong"), fake("raise"), fake("crash"), fake("hang"), fake("exit"),
             fake("good", 16), fake("good", 2, "cuda")]
    seen = []
    with ResultStore(tmp_path / "s.sqlite") as store:
        runner = Runner(store, QUICK, timeout_s=8, progress=lambda d, t, s, r: seen.append((d, r)))
        run_id, status = runner.run(specs, suite="t")
        results = {(r.spec.variant, r.spec.param_dict["m"], r.spec.device): r for r in store.results(run_id)}
        assert status == "complete" and store.run(run_id).status == "complete"
    assert len(results) == len(specs)
    assert results[("good", 8, "cpu")].status == "ok"
    wrong = results[("wrong", 8, "cpu")]
    assert wrong.status == "incorrect" and wrong.rel_error > wrong.tolerance and "exceeds tolerance" in wrong.error
    assert wrong.gflops is None
    assert results[("raise", 8, "cpu")].status == "error"
    assert "fake kernel launch failed" in results[("raise", 8, "cpu")].error
    assert results[("crash", 8, "cpu")].status == "error"
    assert "SIGSEGV" in results[("crash", 8, "cpu")].error
    assert results[("hang", 8, "cpu")].status == "timeout"
    assert "exited with status 3" in results[("exit", 8, "cpu")].error
    assert results[("good", 16, "cpu")].status == "ok"  # a fresh worker after all that
    skipped = results[("good", 2, "cuda")]
    assert skipped.status == "skipped" and skipped.error == "fake: no cuda device found"
    assert [d for d, r in seen if r is not None] == list(range(1, len(specs) + 1))


def test_sigterm_keeps_finished_cases_and_marks_run_interrupted(fake_plugin, tmp_path):
    suite = tmp_path / "hang.toml"
    suite.write_text("""
name = "hang"
baseline = "fake"
[[cases]]
workload = "matmul"
backends = ["fake"]
variants = ["good", "hang"]
dtypes = ["float64"]
params = { size = [8] }
""")
    store = tmp_path / "s.sqlite"
    env = dict(os.environ, GPUBENCH_STORE=str(store))
    proc = subprocess.Popen([sys.executable, "-m", "gpubench", "run", "--suite", str(suite), "--quick"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    deadline = time.monotonic() + 60
    done = 0
    while time.monotonic() < deadline and done < 1:
        time.sleep(0.2)
        if store.exists():
            with ResultStore(store) as s:
                runs = s.runs()
                done = s.count_results(runs[0].id) if runs else 0
    assert done == 1, "the good case should have finished"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    with ResultStore(store) as s:
        run = s.run()
        assert run.status == "interrupted"
        assert [r.status for r in s.results(run.id)] == ["ok"]

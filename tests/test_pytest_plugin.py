"""The pytest plugin, exercised through real pytest runs (``pytester``) with real backends.

Each test writes a small test file and runs pytest in a subprocess, where the plugin loads
through its ``pytest11`` entry point exactly as in a user's project. Two tiny plug-in backends
are registered for these runs through a ``gpubench.backends`` entry point in a ``.dist-info``
directory: one computes a wrong matmul, one runs its work asynchronously (a fake device queue
that only ``synchronize`` waits for).
"""

from __future__ import annotations

import json
import sqlite3
import textwrap

import pytest

pytest_plugins = ["pytester"]

# An inner pytest run (pytester) drops from sys.modules what it imported, and torch cannot be imported a second time
# in one process: imported here, before any inner run, it stays imported for the tests that run after these.
try:
    import torch  # noqa: F401
except ImportError:
    pass

FAKE_BACKENDS = '''
import time

import numpy as np

from gpubench.backends.base import Backend, BoundOp, DeviceInfo


class WrongBackend(Backend):
    """Matmul that is off by 1 %: fast, and wrong."""

    name = "wrongbe"
    device_kinds = ("cpu",)
    ops_package = "gbfake.wrong_ops"

    def devices(self):
        return [DeviceInfo("cpu", "wrong cpu", "cpu")]


class AsyncBackend(Backend):
    """A fake asynchronous device: each call queues 2 ms of work and returns at once."""

    name = "asyncbe"
    device_kinds = ("cpu",)
    ops_package = "gbfake.async_ops"
    busy_until = 0.0

    def devices(self):
        return [DeviceInfo("cpu", "async cpu", "cpu")]

    def enqueue(self, seconds):
        self.busy_until = max(time.perf_counter(), self.busy_until) + seconds

    def synchronize(self, device):
        while time.perf_counter() < self.busy_until:
            pass
'''

WRONG_MATMUL = '''
import numpy as np

from gpubench.backends.base import BoundOp


def build(backend, spec, params, inputs, device):
    a, b = inputs["a"], inputs["b"]
    c = np.empty((a.shape[0], b.shape[1]), dtype=a.dtype)

    def call():
        np.matmul(a, b, out=c)
        np.multiply(c, 1.01, out=c)

    return BoundOp(call=call, result=lambda: c.copy())
'''

ASYNC_MATMUL = '''
import numpy as np

from gpubench.backends.base import BoundOp


def build(backend, spec, params, inputs, device):
    a, b = inputs["a"], inputs["b"]
    c = np.matmul(a, b)

    def call():
        backend.enqueue(0.002)

    def result():
        backend.synchronize(device)
        return c.copy()

    return BoundOp(call=call, result=result, timer=backend.timer(device))
'''


@pytest.fixture
def project(pytester):
    """A pytester directory with the two fake backends registered as gpubench plug-ins."""
    pytester.mkpydir("gbfake")
    (pytester.path / "gbfake" / "__init__.py").write_text(FAKE_BACKENDS)
    for pkg, source in (("wrong_ops", WRONG_MATMUL), ("async_ops", ASYNC_MATMUL)):
        pytester.mkpydir(f"gbfake/{pkg}")
        (pytester.path / "gbfake" / pkg / "matmul.py").write_text(source)
    info = pytester.path / "gbfake-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: gbfake\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[gpubench.backends]\nwrongbe = gbfake:WrongBackend\nasyncbe = gbfake:AsyncBackend\n")
    return pytester


def run(pytester, source: str, *args: str):
    pytester.makepyfile(test_it=textwrap.dedent(source))
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rs", "--gpubench-quick", *args)


def store_rows(path) -> list[dict]:
    with sqlite3.connect(path) as db:
        return [json.loads(r) for (r,) in db.execute("SELECT record FROM results ORDER BY id")]


def test_real_backends_pass_and_are_stored(project, tmp_path):
    store = tmp_path / "s.sqlite"
    out_json = tmp_path / "b.json"
    result = run(project, """
        def test_numpy_matmul(gpubench_case, benchmark):
            case = gpubench_case("matmul", "numpy", params={"size": 64})
            r = case.run(benchmark)
            assert r.status == "ok" and r.rel_error <= r.tolerance
            assert benchmark.stats.stats.median > 0

        def test_torch_saxpy(gpubench_case, benchmark):
            gpubench_case("saxpy", "torch", params={"n": 4096}).run(benchmark)
    """, f"--gpubench-store={store}", f"--benchmark-json={out_json}", "--gpubench-label=t1")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["gpubench: stored 2 case(s) as run 1 in *"])
    rows = store_rows(store)
    assert [(r["spec"]["workload"], r["spec"]["backend"], r["status"]) for r in rows] == [
        ("matmul", "numpy", "ok"), ("saxpy", "torch", "ok")]
    # Sizes are stored as a suite expands them, so the case matches the same case of `gpubench run`.
    assert rows[0]["spec"]["params"] == {"m": 64, "n": 64, "k": 64}
    assert rows[0]["flops"] == 2 * 64**3 and len(rows[0]["samples"]) >= 5
    with sqlite3.connect(store) as db:
        suite, status, label, env = db.execute("SELECT suite, status, label, environment FROM runs").fetchone()
    assert (suite, status, label) == ("pytest-benchmark", "complete", "t1")
    assert json.loads(env)["backends"]["torch"]["available"] is True
    doc = json.loads(out_json.read_text())
    info = doc["benchmarks"][0]["extra_info"]["gpubench"]
    assert info["spec"]["workload"] == "matmul" and info["number"] == doc["benchmarks"][0]["stats"]["iterations"]
    # pytest-benchmark's per-iteration data are the stored per-call samples.
    assert doc["benchmarks"][0]["stats"]["data"] == rows[0]["samples"]


def test_wrong_result_fails_instead_of_passing(project, tmp_path):
    store = tmp_path / "s.sqlite"
    out_json = tmp_path / "b.json"
    result = run(project, """
        def test_wrong(gpubench_case, benchmark):
            gpubench_case("matmul", "wrongbe", params={"size": 32}).run(benchmark)
    """, f"--gpubench-store={store}", f"--benchmark-json={out_json}")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*gpubench: matmul wrongbe:cpu float32 * wrong result against the float64 "
                                 "reference: relative error 0.01 exceeds tolerance*"])
    [row] = store_rows(store)
    assert row["status"] == "incorrect" and row["rel_error"] == pytest.approx(0.01, rel=1e-3)
    # Not timed, so not among pytest-benchmark's benchmarks, but kept (with its error) for `gpubench import`.
    # pytest-benchmark writes no file, or (5.x) an empty one, when no benchmark was timed.
    text = out_json.read_text() if out_json.exists() else ""
    doc = json.loads(text) if text.strip() else {"benchmarks": []}
    assert doc["benchmarks"] == []


def test_a_naive_timing_is_refused_not_mislabelled(project):
    result = run(project, """
        def test_lecture(gpubench_case, benchmark):
            gpubench_case("matmul", "numpy", params={"size": 32, "timing": "lecture"}).run(benchmark)

        def test_default_spelled_out(gpubench_case, benchmark):
            r = gpubench_case("matmul", "numpy", params={"size": 32, "timing": "gpubench"}).run(benchmark)
            assert "timing" not in r.spec.param_dict
    """)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*gpubench: timing = 'lecture' is a way of `gpubench run --suite lecture`*"])


def test_asynchronous_work_is_timed_to_completion(project):
    result = run(project, """
        def test_async(gpubench_case, benchmark):
            r = gpubench_case("matmul", "asyncbe", params={"size": 16}).run(benchmark)
            # Each call queues 2 ms of device work and returns in microseconds: only a synchronized
            # sample sees the work.
            assert r.median_s >= 0.0019, r.median_s
            assert benchmark.stats.stats.median >= 0.0019
            assert r.clock == "perf_counter" and r.status == "ok"
    """)
    result.assert_outcomes(passed=1)


def test_unavailable_device_and_markers_skip_with_reasons(project, tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    store = tmp_path / "s.sqlite"
    result = run(project, """
        import pytest

        def test_cuda_case(gpubench_case, benchmark):
            gpubench_case("matmul", "torch", device="cuda", params={"size": 64}).run(benchmark)

        @pytest.mark.cuda("torch")
        def test_cuda_marker():
            raise AssertionError("must not run")

        @pytest.mark.gpu(backend="asyncbe")
        def test_gpu_marker_cpu_only_backend():
            raise AssertionError("must not run")

        @pytest.mark.parametrize("backend", ["numpy"])
        @pytest.mark.cuda
        def test_marker_backend_from_param(backend):
            raise AssertionError("must not run")

        @pytest.mark.gpu("numpy")
        def test_gpu_marker_in_plain_test():
            raise AssertionError("must not run")
    """, f"--gpubench-store={store}")
    result.assert_outcomes(skipped=5)
    result.stdout.fnmatch_lines_random([
        "SKIPPED*torch: no cuda device found*",
        "SKIPPED*torch: no cuda device found*",
        "SKIPPED*asyncbe: drives no GPU*",
        "SKIPPED*numpy: drives no cuda device*",
    ])
    # Each skip is reported at the user's test, not at the plugin's line.
    skips = [ln for ln in result.stdout.lines if ln.startswith("SKIPPED")]
    assert len(skips) == 5 and all("test_it.py:" in ln and "pytest_plugin" not in ln for ln in skips), skips
    [row] = store_rows(store)
    assert row["status"] == "skipped" and row["error"] == "torch: no cuda device found"


def test_marker_with_unknown_backend_is_an_error(project):
    result = run(project, """
        import pytest

        @pytest.mark.cuda("nosuchbackend")
        def test_x():
            pass
    """)
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*unknown backend 'nosuchbackend'*"])


def test_bad_case_arguments_fail_with_one_line(project):
    result = run(project, """
        def test_bad(gpubench_case, benchmark):
            gpubench_case("matmul", "numpy", params={"size": 0}).run(benchmark)

        def test_unknown_workload(gpubench_case, benchmark):
            gpubench_case("nosuch", "numpy").run(benchmark)
    """)
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines_random(["*gpubench: matmul: size must be >= 1, got 0*",
                                        "*gpubench: unknown workload 'nosuch'*"])


def test_plugin_imports_nothing_heavy_when_unused(project):
    result = run(project, """
        import sys

        def test_plain():
            loaded = [m for m in ("torch", "tensorflow", "cupy", "pyopencl", "numpy", "gpubench.backends")
                      if m in sys.modules]
            assert loaded == [], loaded
    """)
    result.assert_outcomes(passed=1)


def test_backend_fixture(project):
    result = run(project, """
        def test_backend(gpubench_backend):
            b = gpubench_backend("numpy")
            assert b.device.kind == "cpu" and b.backend.name == "numpy"
            b.synchronize()

        def test_backend_cuda(gpubench_backend):
            gpubench_backend("asyncbe", "cuda")
    """)
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED*asyncbe: no cuda device found*"])


def test_ini_store_and_self_timed_training_case(project, tmp_path):
    """``gpubench_store`` in the ini file; an MNIST case stores its epoch times, as ``gpubench run`` does."""
    store = tmp_path / "ini.sqlite"
    project.makeini(f"[pytest]\ngpubench_store = {store}\n")
    result = run(project, """
        def test_mnist(gpubench_case, benchmark):
            case = gpubench_case("mnist", "numpy", params={"train_size": 300, "eval_size": 100, "epochs": 3,
                                                           "accuracy_tolerance": 0.2})
            r = case.run(benchmark)
            # pytest-benchmark timed one whole (warm) training run; the record holds its epoch times.
            assert r.number == 1 and len(r.samples) == 2
            assert benchmark.stats.stats.median > sum(r.samples)
            assert r.metrics["epochs_run"] == 3
    """)
    result.assert_outcomes(passed=1)
    [row] = store_rows(store)
    assert row["spec"]["workload"] == "mnist" and row["status"] == "ok"


def test_per_call_latency_case_times_one_request_per_round(project, tmp_path):
    """An inference case: each pytest-benchmark round is one request, and the record says so (its percentiles)."""
    store = tmp_path / "lat.sqlite"
    result = run(project, """
        def test_inference(gpubench_case, benchmark):
            r = gpubench_case("inference", "numpy", params={"model": "mlp", "batch": 4}).run(benchmark)
            assert r.number == 1 and r.metrics["latency_method"] == "per_call"
            assert r.metrics["latency_calls"] == len(r.samples) and r.metrics["samples_per_call"] == 4
    """, f"--gpubench-store={store}")
    result.assert_outcomes(passed=1)
    [row] = store_rows(store)
    assert row["status"] == "ok" and row["number"] == 1


def test_plugin_and_run_store_the_same_record(project, tmp_path):
    """One case path: the plugin's record equals ``gpubench run``'s, field for field, but for what was measured."""
    import subprocess
    import sys

    plugin_store = tmp_path / "p.sqlite"
    result = run(project, """
        def test_same(gpubench_case, benchmark):
            gpubench_case("matmul", "numpy", params={"size": 64}).run(benchmark)
    """, f"--gpubench-store={plugin_store}")
    result.assert_outcomes(passed=1)
    suite = tmp_path / "one.toml"
    suite.write_text('name = "one"\n[[cases]]\nworkload = "matmul"\nbackends = ["numpy"]\n'
                     'dtypes = ["float32"]\nparams = { size = 64 }\n')
    run_store = tmp_path / "r.sqlite"
    proc = subprocess.run([sys.executable, "-m", "gpubench", "run", "--suite", str(suite), "--quick",
                           "--store", str(run_store)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    [from_plugin], [from_run] = store_rows(plugin_store), store_rows(run_store)
    measured = {"samples", "host_samples", "number", "target_met", "wall_s", "flags", "machine", "energy"}
    assert set(from_plugin) == set(from_run)
    # The machine was watched around both timed windows, the same way.
    for record in (from_plugin, from_run):
        assert record["machine"]["calls"] >= 1 and record["machine"]["cpu"]["span"] == "window"
        assert record["energy"].get("joules_per_call") or record["energy"]["reason"]
    for record in (from_plugin, from_run):
        record["spec"].pop("suite")
        for seconds in ("reference_s", "check_s"):  # how long the reference and the check took: measured too
            record["metrics"].pop(seconds)
    assert {k: v for k, v in from_plugin.items() if k not in measured} == \
           {k: v for k, v in from_run.items() if k not in measured}
    assert from_plugin["samples"] and from_run["samples"]


def test_cases_made_in_one_test_restore_global_state_in_reverse(project):
    """Two cases in one test: their backend scopes unwind last-in first-out, leaving the state found."""
    result = run(project, """
        import torch

        def test_two_cases(gpubench_case):
            assert torch.backends.cudnn.benchmark is False
            gpubench_case("saxpy", "torch", params={"n": 64})
            torch.backends.cudnn.benchmark = True  # as a cuDNN case's build sets it, inside its scope
            gpubench_case("saxpy", "torch", params={"n": 128})

        def test_after(gpubench_case):
            assert torch.backends.cudnn.benchmark is False
    """)
    result.assert_outcomes(passed=2)


def test_sigterm_keeps_finished_cases_and_marks_the_run_interrupted(project, tmp_path):
    """`timeout -s TERM pytest ... --gpubench-store`: every finished case is already committed; the run ends
    ``interrupted`` (not abandoned) and pytest-benchmark still writes its JSON."""
    import os
    import signal
    import subprocess
    import sys
    import time

    store, out_json = tmp_path / "s.sqlite", tmp_path / "b.json"
    test = project.path / "test_cut.py"
    test.write_text(textwrap.dedent("""
        import time

        def test_first(gpubench_case, benchmark):
            gpubench_case("saxpy", "numpy", params={"n": 4096}).run(benchmark)

        def test_second_never_ends():
            time.sleep(120)
    """))
    proc = subprocess.Popen([sys.executable, "-m", "pytest", str(test), "-p", "no:cacheprovider", "-q",
                             "--gpubench-quick", f"--gpubench-store={store}", f"--benchmark-json={out_json}"],
                            cwd=project.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if store.exists() and store_rows(store):
            break
        time.sleep(0.2)
    time.sleep(1.0)  # the second test is sleeping now
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2, out  # pytest's "interrupted"
    assert [r["status"] for r in store_rows(store)] == ["ok"]
    with sqlite3.connect(store) as db:
        status, settings = db.execute("SELECT status, settings FROM runs").fetchone()
    assert status == "interrupted"
    settings = json.loads(settings)
    assert settings["source"] == "pytest" and settings["schema"] == 1 and settings["profile"] == "quick"
    assert settings["budget_s"] == 0.25  # the harness settings, flat, as every writer stores them
    assert [b["name"] for b in json.loads(out_json.read_text())["benchmarks"]] == ["test_first"]

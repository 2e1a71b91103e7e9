"""What the terminal shows: collapsed skips, progress cut to the width, device labels, notes, MNIST columns."""

from __future__ import annotations

import json
import random
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from conftest import run_gpubench  # noqa: E402
from synthetic_results import environment, samples  # noqa: E402
from terminal import FakeStream  # noqa: E402

from gpubench.progress import Progress  # noqa: E402
from gpubench.records import CaseResult, CaseSpec  # noqa: E402
from gpubench.rows import build_rows  # noqa: E402
from gpubench.store import RunInfo  # noqa: E402
from gpubench.tables import device_text, has_gpu, results_table  # noqa: E402

POCL = {"id": "opencl:0:0", "name": "pthread-AMD EPYC [Portable Computing Language]", "kind": "opencl",
        "details": {"platform": "Portable Computing Language", "type": "ALL | CPU"}, "hardware": "cpu"}


def cpu_env(**extra) -> dict:
    env = environment("h", gpu=False)
    env["backends"]["opencl"] = {"available": True, "devices": [POCL]}
    env["backends"]["cupy"] = {"available": False, "reason": "cupy: no CUDA driver found"}
    env.update(extra)
    return env


def spec(backend: str, device: str, size: int = 64, workload: str = "matmul", **params) -> CaseSpec:
    if workload == "matmul":
        params = {"m": size, "n": size, "k": size, **params}
    return CaseSpec.make(workload, backend, device, "float32", params)


def ok(s: CaseSpec, median: float = 1e-3, n: int = 9, target_met: bool = True, **kw) -> CaseResult:
    return CaseResult(s, "ok", samples=samples(median, n, random.Random(0), 0.01), flops=2.0 * 64**3,
                      target_met=target_met, flags=() if target_met else ("noisy",), **kw)


def skipped(s: CaseSpec, reason: str) -> CaseResult:
    return CaseResult(s, "skipped", error=reason)


def run_info(env: dict) -> RunInfo:
    return RunInfo(1, "2026-01-01T00:00:00+00:00", None, "complete", "matmul", "", "numpy", "", {}, env)


# --- progress ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("tty", [False, True])
def test_progress_collapses_skips_per_backend_and_reason(tty, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    stream = FakeStream(tty)
    p = Progress(stream)
    cases = ([(spec("numpy", "cpu", 64 * i), None) for i in (1, 2)]
             + [(spec("torch", "cuda", 64 * i), "torch: no cuda device found") for i in (1, 2, 3)]
             + [(spec("torch", "cpu"), None)]
             + [(spec("cupy", "cuda", 64 * i, variant="x"), "cupy: no CUDA driver found") for i in range(1, 6)]
             + [(spec("cupy", "cuda", 64), "cupy: float16 needs compute capability 7")])
    for i, (s, reason) in enumerate(cases):
        p.update(i, len(cases), s, None)
        p.update(i + 1, len(cases), s, ok(s) if reason is None else skipped(s, reason))
    p.finish()
    lines = [ln.split("\r")[-1].strip() for ln in stream.getvalue().split("\n") if ln.strip()]
    skip_lines = [ln for ln in lines if re.match(r"\d+ \w+ cases? skipped", ln)]
    assert skip_lines == ["3 torch cases skipped: no cuda device found",
                          "5 cupy cases skipped: no CUDA driver found",
                          "1 cupy case skipped: float16 needs compute capability 7"]
    # The torch skips are written when the runner moves on to the next backend, before the cupy ones.
    text = stream.getvalue()
    assert text.index("3 torch cases") < text.index("5 cupy cases")
    assert all(len(seg) <= 100 for ln in text.split("\n") for seg in ln.split("\r"))


def test_progress_lines_are_cut_to_the_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")
    stream = FakeStream()
    p = Progress(stream)
    s = spec("numpy", "cpu")
    p.update(1, 1, s, CaseResult(s, "error", error="x" * 300))
    p.finish()
    [line] = stream.getvalue().splitlines()
    assert len(line) == 60 and line.endswith("…")


# --- the table --------------------------------------------------------------------------------------


def test_table_collapses_skips_names_pocl_and_says_there_is_no_gpu():
    env = cpu_env()
    results = [ok(spec("numpy", "cpu")), ok(spec("opencl", "opencl", variant="blocked"))]
    results += [skipped(spec("torch", "cuda", 64 * i), "torch: no cuda device found") for i in range(1, 4)]
    results += [skipped(spec("cupy", "cuda", 64 * i), "cupy: no CUDA driver found") for i in range(1, 5)]
    text = results_table(build_rows(run_info(env), results), env)
    assert "skipped  " not in text and " skipped " not in text.split("\n\n")[0]  # no skipped rows in the table
    assert "3 torch cases skipped: no cuda device found" in text
    assert "4 cupy cases skipped: no CUDA driver found" in text
    assert "opencl (CPU, PoCL)" in text
    assert text.count("This machine has no GPU") == 1 and "--device cpu" in text
    assert "pip install" not in text


def test_no_gpu_note_only_without_a_gpu():
    env = environment("h", gpu=True)
    assert has_gpu(env)
    results = [ok(spec("numpy", "cpu")), skipped(spec("cupy", "cuda"), "cupy: not installed — pip install x")]
    text = results_table(build_rows(run_info(env), results), env)
    assert "no GPU" not in text and "1 cupy case skipped: not installed" in text
    assert not has_gpu(cpu_env())
    gpu_opencl = dict(POCL, hardware="gpu")
    assert has_gpu({"backends": {"opencl": {"devices": [gpu_opencl]}}})


def test_device_text():
    env = cpu_env()
    assert device_text(env, "opencl", "opencl") == "opencl (CPU, PoCL)"
    assert device_text(env, "opencl", "opencl:0:0") == "opencl:0:0 (CPU, PoCL)"
    # A run recorded before devices declared their hardware: the OpenCL type says it.
    old = {k: v for k, v in POCL.items() if k != "hardware"}
    assert device_text({"backends": {"opencl": {"devices": [old]}}}, "opencl", "opencl") == "opencl (CPU, PoCL)"
    assert device_text(environment("h"), "torch", "cuda:0") == "cuda:0"
    assert device_text(None, "numpy", "cpu") == "cpu"


def test_noise_banner_with_load_and_one_run_cases():
    env = cpu_env(load_avg=[1.93, 1.2, 0.8])
    results = [ok(spec("numpy", "cpu", 64 * i), target_met=False) for i in range(1, 4)] + [ok(spec("torch", "cpu"))]
    text = results_table(build_rows(run_info(env), results), env)
    assert "note: 3 of 4 measured cases are noisy" in text
    assert "Load average when the run started: 1.93, 1.2, 0.8 (1, 5, 15 min) on 32 logical cores" in text
    one = [ok(spec("numpy", "cpu"), n=1, target_met=False)]
    text = results_table(build_rows(run_info(env), one), env)
    assert "1 run" in text and "±0.0%" not in text and "noisy" not in text


def test_mnist_table_shows_accuracy_and_samples_per_second():
    env = cpu_env()
    s = spec("torch", "cpu", workload="mnist", model="mlp", optimizer="sgd", epochs=2, train_size=2000,
             eval_size=1000, batch_size=100)
    r = CaseResult(s, "ok", samples=(0.5,), flops=1e9, target_met=False, flags=("noisy",), metrics={
        "final_accuracy": 0.8915, "samples_per_s": 4012.3, "time_to_target_s": 0.91})
    text = results_table(build_rows(run_info(env), [r]), env)
    header = text.splitlines()[0]
    for column in ("per epoch", "accuracy", "to target", "samples/s"):
        assert column in header
    assert "0.8915" in text and "4,012" in text and "0.91 s" in text and "1 run" in text


# --- the real thing -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_cpu_quick_matmul_prints_at_most_one_skip_line_per_backend(store_path):
    proc = run_gpubench("run", "--suite", "matmul", "--quick", env={"COLUMNS": "120"}, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    skip_lines = [ln for ln in proc.stderr.splitlines() if " skipped" in ln]
    backends = [ln.split()[1] for ln in skip_lines]
    assert len(backends) == len(set(backends)), skip_lines  # one line per skipped backend (one reason each here)
    # Progress lines fit the terminal's width (a one-line warning, such as a busy machine's, is not cut).
    assert all(len(ln) <= 120 for ln in proc.stderr.splitlines() if not ln.startswith("gpubench: warning:"))
    assert not re.search(r"^matmul .* skipped ", proc.stdout, re.M)  # no skipped rows in the table
    env = json.loads(run_gpubench("export", "--format", "json").stdout)["runs"][0]["environment"]
    if not has_gpu(env):
        assert proc.stdout.count("This machine has no GPU") == 1
        assert re.search(r"^\d+ cupy cases skipped: ", proc.stdout, re.M)

"""The command line: real runs, tables, exports, and every bad-input path (exit 2, nothing written)."""

import csv
import io
import json
import subprocess
import sys

import pytest
from conftest import run_gpubench

from gpubench.export import FIELDS


def test_help_imports_no_framework():
    code = ("import sys; from gpubench.cli import build_parser; build_parser().format_help(); "
            "heavy = [m for m in ('torch', 'tensorflow', 'jax', 'cupy', 'pyopencl', 'numpy', 'plotly') "
            "if m in sys.modules]; "
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_help_and_version():
    proc = run_gpubench("--help")
    assert proc.returncode == 0 and "run" in proc.stdout and "export" in proc.stdout
    assert run_gpubench("--version").stdout.startswith("gpubench ")


def test_run_show_export_numpy(store_path, cli, tmp_path):
    proc = run_gpubench("run", "--suite", "matmul", "--quick", "--backend", "numpy", "--dtype", "float32")
    assert proc.returncode == 0, proc.stderr
    assert "numpy" in proc.stdout and "ok" in proc.stdout and "GFLOP/s" in proc.stdout
    assert "[" in proc.stderr  # progress lines

    code, out, _ = cli("show")
    assert code == 0 and "matmul" in out and "1.00×" in out

    code, out, _ = cli("export", "--format", "json")
    doc = json.loads(out)
    assert doc["schema"] == "gpubench-results" and doc["schema_version"] == 3
    rows = doc["results"]
    assert rows and all(set(FIELDS) <= set(r) for r in rows)
    for r in rows:
        assert r["status"] == "ok" and r["gflops"] > 0 and r["speedup"] == pytest.approx(1.0)
        # Energy per call, or the reason there is none (never 0); the machine it ran on.
        assert (r["joules_per_call"] or 0) > 0 or r["energy_reason"]
        assert "cpu" in r["machine"]
        assert r["ci95_low_s"] <= r["median_s"] <= r["ci95_high_s"] and r["samples"]
    env = doc["runs"][0]["environment"]
    assert env["cpu"]["model"] and env["python"] and "numpy" in env["libraries"]
    assert env["backends"]["numpy"]["available"]

    out_csv = tmp_path / "r.csv"
    code, _, err = cli("export", "--format", "csv", "-o", str(out_csv))
    assert code == 0
    table = list(csv.DictReader(io.StringIO(out_csv.read_text())))
    assert len(table) == len(rows) and list(table[0])[:len(FIELDS)] == list(FIELDS)
    assert {r["metric.reference_source"] for r in table} <= {"computed", "cached", "freivalds"}
    assert json.loads(table[0]["params"])["m"] in (64, 128, 512)


def test_run_dry_run_lists_cases(store_path):
    proc = run_gpubench("run", "--suite", "saxpy", "--quick", "--backend", "numpy", "--dry-run")
    assert proc.returncode == 0 and "saxpy numpy:cpu float32" in proc.stdout
    assert not store_path.exists()


def test_list_shows_availability_and_reasons(cli):
    code, out, _ = cli("list")
    assert code == 0
    assert "numpy" in out and "torch" in out and "matmul" in out and "saxpy" in out
    assert "cupy" in out  # listed with its reason even where it cannot run


def test_env_prints_machine(cli):
    code, out, _ = cli("env", "--backend", "numpy")
    assert code == 0 and "CPU" in out and "BLAS" in out
    code, out, _ = cli("env", "--json", "--backend", "none")
    assert code == 0 and json.loads(out)["cpu"]["logical_cores"] >= 1


BAD = [
    (["run", "--suite", "nope"], "unknown suite"),
    (["run", "--suite", "matmul", "--backend", "nosuch"], "unknown backend"),
    (["run", "--suite", "matmul", "--device", "tpu"], "unknown device"),
    (["run", "--suite", "matmul", "--dtype", "float8"], "unknown dtype"),
    (["run", "--suite", "matmul", "--timeout", "-1"], "--timeout must be a positive"),
    (["run", "--suite", "matmul", "--budget", "-1"], "--budget must be a positive finite number of seconds, got -1"),
    (["run", "--suite", "matmul", "--target", "5"], "--target must be a fraction between 0 and 1"),
    (["show", "7"], "no results store"),
    (["env", "--backend", "nosuch"], "unknown backend"),
]


@pytest.mark.parametrize("args, message", BAD)
def test_bad_input_exits_2_and_writes_nothing(store_path, cli, args, message):
    code, _, err = cli(*args)
    assert code == 2
    assert message in err and err.count("\n") == 1 and err.startswith("gpubench: error:")
    assert not store_path.exists()


@pytest.mark.parametrize("args", [
    ["run", "--suite", "saxpy", "--backend", ""],
    ["run", "--suite", "saxpy", "--backend", "numpy,"],
    ["run", "--suite", "saxpy", "--device", ""],
    ["run", "--suite", "saxpy", "--dtype", " "],
    ["run", "--suite", ""],
    ["calibrate", "--backend", ""],
    ["calibrate", "--device", ","],
    ["env", "--backend", ""],
    ["runs", "--store", ""],
])
def test_an_empty_filter_value_is_an_error(store_path, cli, args):
    code, out, err = cli(*args)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("gpubench: error:") and "empty" in err
    assert not store_path.exists()


@pytest.mark.parametrize("body, message", [
    ("[[cases]]\nworkload='matmul'\nparams={size=[0]}", "matmul: size must be >= 1, got 0"),
    ("[[cases]]\nworkload='matmul'\nparams={size=[-3]}", "matmul: size must be >= 1, got -3"),
    ("[[cases]]\nworkload='matmul'\nparams={size=[1.5]}", "matmul: size must be an integer"),
    ("[[cases]]\nworkload='matmul'\nparams={m=[0], n=[4], k=[4]}", "matmul: m must be >= 1, got 0"),
    ("[[cases]\n", "malformed TOML"),
    ("[[cases]]\nworkload='matmul'\nbackends=['numpy']\nparams={size=[3000000]}", "GiB of memory"),
])
def test_bad_suite_file_exits_2(store_path, cli, tmp_path, body, message):
    path = tmp_path / "bad.toml"
    path.write_text(body)
    code, _, err = cli("run", "--suite", str(path))
    assert code == 2 and message in err and err.count("\n") == 1
    assert not store_path.exists()


def test_bad_run_reference_exits_2(store_path, cli):
    assert run_gpubench("run", "--suite", "saxpy", "--quick", "--backend", "numpy").returncode == 0
    code, _, err = cli("show", "41")
    assert code == 2 and "no run 41" in err
    code, _, err = cli("export", "--run", "latest~5")
    assert code == 2


def test_python_dash_m_works():
    proc = subprocess.run([sys.executable, "-m", "gpubench", "list", "suites"], capture_output=True, text=True)
    assert proc.returncode == 0 and "matmul" in proc.stdout

"""The command line: real runs, tables, exports, and every bad-input path (exit 2, nothing written)."""

import csv
import io
import json
import subprocess
import sys

import pytest
from conftest import run_gpubench
from terminal import table_cells

from gpubench.export import EXPORT_SCHEMA_VERSION, FIELDS


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
    """NumPy and PyTorch on the CPU: the table and the export give torch's speedup over numpy (numpy's own is
    1), the energy of each record or the record's own reason, and the same numbers in CSV."""
    pytest.importorskip("torch")
    proc = run_gpubench("run", "--suite", "matmul", "--quick", "--backend", "numpy", "--backend", "torch",
                        "--device", "cpu", "--dtype", "float32")
    assert proc.returncode == 0, proc.stderr
    assert "numpy" in proc.stdout and "torch" in proc.stdout and "GFLOP/s" in proc.stdout
    assert "[" in proc.stderr  # progress lines

    code, out, _ = cli("export", "--format", "json")
    doc = json.loads(out)
    assert doc["schema"] == "gpubench-results" and doc["schema_version"] == EXPORT_SCHEMA_VERSION
    rows = doc["results"]
    assert rows and all(set(FIELDS) <= set(r) for r in rows)
    ok = [r for r in rows if r["status"] == "ok"]
    numpy_of = {r["size"]: r for r in ok if r["backend"] == "numpy"}
    torch_rows = [r for r in ok if r["backend"] == "torch"]
    assert numpy_of and torch_rows
    for r in ok:
        assert r["gflops"] == pytest.approx(r["flops"] / r["median_s"] / 1e9) and r["rate"] == r["gflops"]
        assert r["ci95_low_s"] <= r["median_s"] <= r["ci95_high_s"] and len(r["samples"]) == r["n_samples"]
        assert r["rel_error"] <= r["tolerance"] and r["baseline"] == "numpy:cpu"
    for r in numpy_of.values():
        assert r["speedup"] == 1.0 and r["speedup_ci"] == 0.0
    for r in torch_rows:  # a speedup between two different libraries, not numpy against itself
        base = numpy_of[r["size"]]
        assert r["speedup"] == pytest.approx(base["median_s"] / r["median_s"], rel=1e-12)
        fastest = min((base, r), key=lambda x: x["median_s"])
        assert r["fastest_cpu"] == f"{fastest['backend']}:cpu"
        assert r["speedup_cpu"] == pytest.approx(fastest["median_s"] / r["median_s"], rel=1e-12)

    # Energy: what the record measured (joules per call, and work per joule from it), or the record's reason.
    from gpubench.store import ResultStore

    with ResultStore(store_path, readonly=True) as store:
        records = store.results(doc["runs"][0]["run_id"])
    assert len(records) == len(rows)
    for r, rec in zip(rows, records):
        assert r["params"] == rec.spec.param_dict and r["median_s"] == rec.median_s
        assert r["energy"] == rec.energy and r["machine"] == rec.machine and "cpu" in r["machine"]
        if rec.energy.get("joules_per_call") is not None and r["status"] == "ok":
            assert r["joules_per_call"] == rec.energy["joules_per_call"] > 0 and r["energy_reason"] == ""
            assert r["gflop_per_joule"] == pytest.approx(r["flops"] / 1e9 / r["joules_per_call"])
        else:
            assert r["joules_per_call"] is None and r["gflop_per_joule"] is None
            assert r["energy_reason"] == (rec.energy.get("reason") or "not measured")
    env = doc["runs"][0]["environment"]
    assert env["cpu"]["model"] and env["python"] and "numpy" in env["libraries"]
    assert env["backends"]["numpy"]["available"]

    # The table shows the same speedups, one line per case.
    code, out, _ = cli("show")
    assert code == 0
    shown = {(c[0], c[1], c[2]): c for c in table_cells(out)}
    for r in ok:
        cells = shown[(r["workload"], r["size"], r["implementation"])]
        assert cells[9] == f"{r['speedup']:.2f}×"

    out_csv = tmp_path / "r.csv"
    code, _, err = cli("export", "--format", "csv", "-o", str(out_csv))
    assert code == 0
    table = list(csv.DictReader(io.StringIO(out_csv.read_text())))
    assert len(table) == len(rows) and list(table[0])[:len(FIELDS)] == list(FIELDS)
    assert {r["metric.reference_source"] for r in table} <= {"computed", "cached", "freivalds"}
    for line, r in zip(table, rows):
        assert json.loads(line["params"]) == r["params"]
        assert (float(line["speedup"]) if line["speedup"] else None) == r["speedup"]


def test_run_dry_run_lists_cases(store_path):
    proc = run_gpubench("run", "--suite", "saxpy", "--quick", "--backend", "numpy", "--dry-run")
    assert proc.returncode == 0 and "saxpy numpy:cpu float32" in proc.stdout
    assert not store_path.exists()


LIST_PLUGIN = {
    "gpubench_listtest/__init__.py": (
        "from gpubench.backends.base import Backend, DeviceInfo\n"
        "from gpubench.errors import Unavailable\n\n\n"
        "class Absent(Backend):\n"
        "    name = 'absent'\n"
        "    def load(self):\n"
        "        raise Unavailable('absent: needs the frobnicator 3 (pip install frobnicator)')\n"
        "    def devices(self):\n"
        "        return []\n\n\n"
        "class Present(Backend):\n"
        "    name = 'present'\n"
        "    ops_package = 'gpubench_listtest.ops'\n"
        "    def devices(self):\n"
        "        return [DeviceInfo('cpu', 'present cpu', 'cpu', dtypes=('float64', 'float32'))]\n"),
    "gpubench_listtest/ops/__init__.py": "",
    "gpubench_listtest/ops/saxpy.py": "",
}


def test_list_shows_availability_and_reasons(cli, monkeypatch, tmp_path):
    """One row per device of an available backend (its dtypes and workloads); one ``no`` row for one that cannot
    run here, with the reason its own probe gives."""
    from conftest import install_plugin

    install_plugin(monkeypatch, tmp_path / "plugins",
                   {"absent": "gpubench_listtest:Absent", "present": "gpubench_listtest:Present"},
                   LIST_PLUGIN, dist="gpubench_listtest")
    code, out, _ = cli("list", "backends")
    assert code == 0
    rows: dict[str, list[list[str]]] = {}
    for cells in table_cells(out):
        rows.setdefault(cells[0], []).append(cells)
    assert rows["absent"] == [["absent", "no", "cpu", "-", "absent: needs the frobnicator 3 (pip install frobnicator)"]]
    assert rows["present"] == [["present", "yes", "cpu (present cpu)", "float64,float32", "saxpy"]]
    numpy = rows["numpy"]
    assert len(numpy) == 1 and numpy[0][1] == "yes" and numpy[0][2].startswith("cpu (")
    assert "float32" in numpy[0][3].split(",") and {"matmul", "saxpy"} <= set(numpy[0][4].split(", "))
    assert "cupy" in rows  # listed whether or not it can run here
    for name, lines in rows.items():
        for cells in lines:
            if cells[1] == "no":  # the reason names the backend and says why, never just the name
                assert len(lines) == 1 and cells[4].startswith(f"{name}:") and len(cells[4]) > len(name) + 5


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

"""Extension points, used the way a third-party package uses them.

``tests/workload_plugin`` holds a workload plug-in (``scan``, a prefix sum) registered through the
``gpubench.workloads`` entry point, with its own op modules for two built-in backends and its own
suite file. Nothing in gpubench names it: discovery, suite expansion, the case path, the store,
export and the report all take it from the public contract.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import os
import re
from pathlib import Path

import pytest
from conftest import run_gpubench
from terminal import table_cells

from gpubench.tables import fmt_time

PLUGIN = Path(__file__).resolve().parent / "workload_plugin"


@pytest.fixture
def scan_env(store_path):
    old = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": str(PLUGIN) + (os.pathsep + old if old else "")}


def _page_data(path: Path) -> dict:
    """The figures and case table a report carries as JSON."""
    found = re.search(r'<script type="application/json" id="gpubench-data">(.*?)</script>', path.read_text(), re.S)
    return json.loads(found.group(1))


def test_workload_plugin_runs_on_builtin_backends(scan_env, store_path, tmp_path):
    proc = run_gpubench("list", "workloads", env=scan_env)
    assert proc.returncode == 0
    assert re.search(r"^scan\s+gbps\s+inclusive prefix sum y = cumsum\(x\)$", proc.stdout, re.M), proc.stdout

    proc = run_gpubench("run", "--suite", str(PLUGIN / "scan.toml"), "--quick", "--device", "cpu", env=scan_env)
    assert proc.returncode == 0, proc.stderr
    proc = run_gpubench("export", "--format", "json", env=scan_env)
    rows = json.loads(proc.stdout)["results"]
    ok = {r["backend"]: r for r in rows if r["status"] == "ok"}
    # The plug-in's own op modules ran on both built-in backends, and their outputs passed the float64 check.
    expected = {"numpy"} | ({"torch"} if importlib.util.find_spec("torch") else set())
    assert expected <= set(ok), [(r["backend"], r["status"], r["error"]) for r in rows]
    for r in ok.values():
        assert r["workload"] == "scan" and r["params"] == {"n": 4096} and r["size"] == "n=4096"
        assert 0 <= r["rel_error"] <= r["tolerance"]
        # The workload's accounting: n − 1 additions, 2·n float32 elements moved; GB/s is its headline rate.
        assert r["flops"] == 4095 and r["bytes"] == 2 * 4096 * 4
        assert r["unit"] == r["rate_unit"] == "gbps" and r["rate"] == pytest.approx(r["bytes"] / r["median_s"] / 1e9)
        assert r["speedup"] == pytest.approx(ok["numpy"]["median_s"] / r["median_s"])

    out = tmp_path / "r.html"
    proc = run_gpubench("report", "-o", str(out), env=scan_env)
    assert proc.returncode == 0, proc.stderr
    assert 'id="w-scan"' in out.read_text()  # its own section, from the plug-in's declared report section
    data = _page_data(out)
    titles = {f["layout"]["title"]["text"]: f for f in data["figures"]}
    rates = titles["scan float32: GB/s against size"]
    drawn = sorted(y for trace in rates["data"] for y in trace["y"])
    assert drawn == pytest.approx(sorted(r["rate"] for r in ok.values()))
    assert "scan float32: speedup" in titles
    table = [cells for cells in data["table"]["rows"] if cells[1] == "scan"]
    assert sorted(c[9][0] for c in table if c[6] == "ok") == pytest.approx(sorted(r["rate"] for r in ok.values()))
    assert {c[9][1] for c in table if c[6] == "ok"} == {"GB/s"}


def test_results_of_a_missing_workload_plugin_still_read(scan_env, store_path, tmp_path):
    """A store written with a plug-in reads on a machine without it: its cases show in ``show``, ``export`` and
    ``report`` with their measured times (their size as plain parameters, their rate by FLOPs)."""
    proc = run_gpubench("run", "--suite", str(PLUGIN / "scan.toml"), "--quick", "--backend", "numpy", env=scan_env)
    assert proc.returncode == 0, proc.stderr
    measured = json.loads(run_gpubench("export", "--format", "json", env=scan_env).stdout)["results"]
    assert [r["status"] for r in measured] == ["ok"]
    case = measured[0]

    proc = run_gpubench("show")  # the plug-in is not on the path any more
    assert proc.returncode == 0, proc.stderr
    (line,) = [cells for cells in table_cells(proc.stdout) if cells[0] == "scan"]
    assert line[1:7] == ["n=4096", "numpy", "cpu", "float32", "ok", fmt_time(case["median_s"])]
    assert line[9] == "1.00×"

    proc = run_gpubench("export", "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    (row,) = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert (row["workload"], row["status"], float(row["median_s"])) == ("scan", "ok", case["median_s"])
    assert json.loads(row["samples"]) == case["samples"] and json.loads(row["params"]) == {"n": 4096}
    assert float(row["gflops"]) == pytest.approx(4095 / case["median_s"] / 1e9)  # FLOPs and bytes are stored

    out = tmp_path / "r.html"
    proc = run_gpubench("report", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    (cells,) = [c for c in _page_data(out)["table"]["rows"] if c[1] == "scan"]
    assert cells[6:8] == ["ok", case["median_s"]] and cells[11] == 1.0


def test_a_broken_workload_plugin_is_named_not_a_traceback(tmp_path, store_path):
    pkg = tmp_path / "brokenwl"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("raise ImportError('broken on purpose')\n")
    info = tmp_path / "brokenwl-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: brokenwl\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[gpubench.workloads]\nbroken = brokenwl:Broken\n")
    env = {"PYTHONPATH": str(tmp_path)}
    proc = run_gpubench("list", "workloads", env=env)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    assert "broken" in proc.stdout and "unavailable" in proc.stdout
    proc = run_gpubench("run", "--suite", "saxpy", "--quick", "--backend", "numpy", env=env)
    assert proc.returncode == 0, proc.stderr

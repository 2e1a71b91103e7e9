"""Extension points, used the way a third-party package uses them.

``tests/workload_plugin`` holds a workload plug-in (``scan``, a prefix sum) registered through the
``gpubench.workloads`` entry point, with its own op modules for two built-in backends and its own
suite file. Nothing in gpubench names it: discovery, suite expansion, the case path, the store,
export and the report all take it from the public contract.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import run_gpubench

PLUGIN = Path(__file__).resolve().parent / "workload_plugin"


@pytest.fixture
def scan_env(store_path):
    old = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": str(PLUGIN) + (os.pathsep + old if old else "")}


def test_workload_plugin_runs_on_builtin_backends(scan_env, store_path, tmp_path):
    proc = run_gpubench("list", "workloads", env=scan_env)
    assert proc.returncode == 0 and "scan" in proc.stdout and "prefix sum" in proc.stdout

    proc = run_gpubench("run", "--suite", str(PLUGIN / "scan.toml"), "--quick", "--device", "cpu", env=scan_env)
    assert proc.returncode == 0, proc.stderr
    proc = run_gpubench("export", "--format", "json", env=scan_env)
    rows = json.loads(proc.stdout)["results"]
    got = {(r["backend"], r["status"]) for r in rows}
    assert ("numpy", "ok") in got
    if any(r["backend"] == "torch" for r in rows):
        assert ("torch", "ok") in got
    assert all(r["unit"] == "gbps" and r["gbps"] > 0 for r in rows if r["status"] == "ok")

    out = tmp_path / "r.html"
    proc = run_gpubench("report", "-o", str(out), env=scan_env)
    assert proc.returncode == 0, proc.stderr
    assert "scan" in out.read_text()


def test_results_of_a_missing_workload_plugin_still_read(scan_env, store_path, tmp_path):
    """A store written with a plug-in reads on a machine without it (show, export, report)."""
    proc = run_gpubench("run", "--suite", str(PLUGIN / "scan.toml"), "--quick", "--backend", "numpy", env=scan_env)
    assert proc.returncode == 0, proc.stderr
    for args in (("show",), ("export", "--format", "csv"), ("report", "-o", str(tmp_path / "r.html"))):
        proc = run_gpubench(*args)
        assert proc.returncode == 0, (args, proc.stderr)
    assert "scan" in run_gpubench("show").stdout


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

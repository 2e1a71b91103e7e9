"""scripts/gpu_evidence.sh rehearsed end to end on the CPU, as the lent GPU machine will run it: gpubench not
installed (it runs from a copy of the checkout on PYTHONPATH, the pytest plug-in loaded with ``-p``), every step
under a time limit, everything written under $OUT, the store checkpointed."""

from __future__ import annotations

import json
import sqlite3
import subprocess

import pytest
from uninstalled import uninstalled_python

#: Every step of the script, in order.
STEPS = ["envcheck", "env", "calibrate", "fidelity", "tour", "lecture", "pytest", "export", "report"]
#: At most this many files come back from a lent machine's $OUT.
MAX_FILES = 8


@pytest.mark.slow
def test_the_evidence_script_on_the_cpu(tmp_path):
    wrapper, env, checkout = uninstalled_python(tmp_path / "bare")
    out = tmp_path / "out"
    env.update(OUT=str(out), PYTHON=str(wrapper))
    proc = subprocess.run(["bash", "scripts/gpu_evidence.sh", "--device", "cpu", "--quick", "--budget", "300",
                           "--backends", "numpy,torch"], cwd=checkout, env=env, capture_output=True, text=True,
                          timeout=420)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = (out / "evidence.log").read_text()
    assert "gpubench is not installed: running from this checkout" in log
    files = sorted(p.name for p in out.iterdir())
    assert len(files) <= MAX_FILES and all(p.is_file() for p in out.iterdir())
    assert {"evidence.log", "steps.tsv", "env.json", "export.json", "gpubench.sqlite"} <= set(files), files
    assert not [f for f in files if f.endswith(("-wal", "-shm"))]
    # Every step ran, in order, within its limit; the ones that save the evidence succeeded.
    rows = [line.split("\t") for line in (out / "steps.tsv").read_text().splitlines()[1:]]
    assert [r[0] for r in rows] == STEPS, log[-3000:]
    status = {r[0]: r[1] for r in rows}
    assert all(int(r[2]) <= int(r[3]) + 16 for r in rows if r[1] != "not run")
    assert status["env"] == status["export"] == "0", log[-3000:]
    env_doc = json.loads((out / "env.json").read_text())
    assert env_doc["cpu"]["logical_cores"] >= 1
    export = json.loads((out / "export.json").read_text())
    suites = {r["suite"] for r in export["runs"]}
    assert {"calibrate", "tour"} <= suites, suites
    # The store is one file, checkpointed, and holds every run the export holds.
    with sqlite3.connect(out / "gpubench.sqlite") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == len(export["runs"])
    if status["report"] == "0":
        # The tour's card opens the report (several runs shown: its id names the run).
        assert (out / "report.html").read_text().count('id="card') == 1
    if status["pytest"] == "0":
        assert json.loads((out / "bench.json").read_text())["benchmarks"]
        assert "pytest-benchmark" in suites

"""One run recorder for every writer (``gpubench run``, ``calibrate``, the collective launcher, the pytest plug-in),
with one settings schema."""

from __future__ import annotations

import math
import sqlite3
from dataclasses import asdict

import pytest
from conftest import run_gpubench

from gpubench.harness import HarnessSettings
from gpubench.profile import QUICK
from gpubench.recorder import SETTINGS_SCHEMA, SOURCES, RunRecorder, RunSettings, ran_of_planned
from gpubench.records import CaseSpec
from gpubench.store import ResultStore

#: The keys every writer's run settings have (the harness's fields flat, then the run's own).
SCHEMA_KEYS = set(asdict(HarnessSettings())) | {"schema", "source", "timeout_s", "time_limit_s", "wait_idle_s"}


def test_settings_schema():
    d = RunSettings("run", QUICK, "quick", timeout_s=math.inf, time_limit_s=480.0, planned_cases=12,
                    wait_idle_s=2.0).to_dict()
    assert set(d) == SCHEMA_KEYS | {"profile", "planned_cases"}
    assert d["schema"] == SETTINGS_SCHEMA and d["source"] == "run" and d["budget_s"] == QUICK.budget_s
    assert d["timeout_s"] is None and d["time_limit_s"] == 480.0 and d["planned_cases"] == 12
    assert set(RunSettings("collective", extra={"world_size": 2}).to_dict()) == SCHEMA_KEYS | {"extra"}
    with pytest.raises(ValueError, match="unknown run source"):
        RunSettings("importer")
    assert SOURCES == ("run", "calibrate", "collective", "pytest")


def test_a_recorded_run(tmp_path):
    spec = CaseSpec.make("saxpy", "numpy", "cpu", "float32", {"n": 1024})
    from gpubench.records import CaseResult

    with ResultStore(tmp_path / "s.sqlite") as store:
        rec = RunRecorder(store, "t", RunSettings("run"), label="L", command="gpubench run", environment={"a": 1})
        with pytest.raises(RuntimeError):
            rec.add(CaseResult(spec, "skipped", error="x"))
        run_id = rec.begin()
        rec.add(CaseResult(spec, "skipped", error="x"))
        rec.environment["b"] = 2
        rec.update_environment()
        rec.finish("time_limited", ran_of_planned(1, 3, 60.0, 2))
        run = store.run(run_id)
    assert (run.status, run.label, run.environment) == ("time_limited", "L", {"a": 1, "b": 2})
    assert run.reason == "time limit 1m00s: 1 of 3 cases ran, 2 not started (their estimates did not fit in the " \
                         "time left)"
    assert rec.added == 1


def _settings(path, suite=None):
    with sqlite3.connect(path) as db:
        import json

        rows = db.execute("SELECT suite, settings FROM runs ORDER BY id").fetchall()
    return {s: json.loads(t) for s, t in rows if suite is None or s == suite}


def test_run_and_calibrate_record_the_same_schema(store_path, tmp_path):
    suite = tmp_path / "one.toml"
    suite.write_text('name = "one"\n[[cases]]\nworkload = "saxpy"\nbackends = ["numpy"]\n'
                     'dtypes = ["float32"]\nparams = { n = 1024 }\n')
    assert run_gpubench("run", "--suite", str(suite), "--quick").returncode == 0
    assert run_gpubench("calibrate", "--quick", "--backend", "numpy", "--time-limit", "5m").returncode == 0
    settings = _settings(store_path)
    assert set(settings) == {"one", "calibrate"}
    for source, s in (("run", settings["one"]), ("calibrate", settings["calibrate"])):
        assert SCHEMA_KEYS <= set(s) and s["source"] == source and s["schema"] == SETTINGS_SCHEMA
    assert settings["calibrate"]["profile"] == "calibrate+quick" and settings["calibrate"]["time_limit_s"] == 300
    assert settings["one"]["planned_cases"] == 1 and settings["one"]["time_limit_s"] is None

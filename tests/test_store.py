"""The SQLite store: round trips, step-by-step migrations, concurrent writers."""

import multiprocessing
import sqlite3

import pytest

from gpubench.errors import GpubenchError, UsageError
from gpubench.records import CaseResult, CaseSpec
from gpubench.store import MIGRATIONS, SCHEMA_VERSION, ResultStore


def result(i=0, status="ok"):
    spec = CaseSpec.make("matmul", "numpy", "cpu", "float32", {"m": i + 1, "n": 2, "k": 2})
    if status == "ok":
        return CaseResult(spec=spec, status="ok", samples=(1e-3, 2e-3), flops=8.0, rel_error=0.0, tolerance=1e-5)
    return CaseResult(spec=spec, status=status, error="because")


def test_round_trip(tmp_path):
    with ResultStore(tmp_path / "s.sqlite") as store:
        assert store.schema_version == SCHEMA_VERSION
        run = store.begin_run("matmul", baseline="numpy", environment={"cpu": {"model": "x"}})
        store.add_result(run, result(0))
        store.add_result(run, result(1, "skipped"))
        store.finish_run(run)
    with ResultStore(tmp_path / "s.sqlite", create=False) as store:
        info = store.run("latest")
        assert (info.id, info.status, info.suite, info.baseline) == (run, "complete", "matmul", "numpy")
        assert info.environment == {"cpu": {"model": "x"}}
        got = store.results(run)
        assert got == [result(0), result(1, "skipped")]


def test_run_references(tmp_path):
    with ResultStore(tmp_path / "s.sqlite") as store:
        a = store.begin_run("a")
        b = store.begin_run("b")
        assert store.run().id == b and store.run("latest~1").id == a and store.run(str(a)).id == a
        for bad in ("latest~9", "99", "x", "latest~x"):
            with pytest.raises(UsageError):
                store.run(bad)


def test_missing_store_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="no results store"):
        ResultStore(tmp_path / "none.sqlite", create=False)


def test_not_a_store(tmp_path):
    p = tmp_path / "junk.sqlite"
    p.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(UsageError, match="not a gpubench store"):
        ResultStore(p)


def test_migration_from_v1_keeps_data(tmp_path):
    p = tmp_path / "old.sqlite"
    db = sqlite3.connect(p)
    db.executescript(MIGRATIONS[0])
    db.execute("PRAGMA user_version = 1")
    db.execute("INSERT INTO runs (started_at, status, suite) VALUES ('2026-01-01T00:00:00+00:00', 'complete', 'old')")
    db.commit()
    db.close()
    with ResultStore(p) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert store.run().suite == "old"
        store.add_ceiling(store.run().id, "cpu", "flops", 1e11, "FLOP/s", dtype="float32", method="matmul 2048")
        assert store.ceilings(store.run().id)[0]["value"] == 1e11


def test_newer_schema_is_refused(tmp_path):
    p = tmp_path / "new.sqlite"
    db = sqlite3.connect(p)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(GpubenchError, match="newer than this gpubench"):
        ResultStore(p)


def _writer(path, n, barrier):
    store = ResultStore(path)
    run = store.begin_run("concurrent")
    barrier.wait()
    for i in range(n):
        store.add_result(run, result(i))
    store.finish_run(run)
    store.close()


def test_two_concurrent_writers_lose_nothing(tmp_path):
    path = tmp_path / "c.sqlite"
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_writer, args=(path, 200, barrier)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    with ResultStore(path) as store:
        runs = store.runs()
        assert len(runs) == 2 and all(r.status == "complete" for r in runs)
        assert [store.count_results(r.id) for r in runs] == [200, 200]

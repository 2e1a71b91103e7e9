"""The store interface, run on every kind of store (SQLite and a real PostgreSQL server): round trips,
run references, step-by-step migrations, transactions, concurrent writers, stable run ids, passwords."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3

import pytest

from gpubench.errors import GpubenchError, UsageError
from gpubench.records import CaseResult, CaseSpec
from gpubench.store import SCHEMA_VERSION, ResultStore, open_store
from gpubench.store import postgres as pg_store
from gpubench.store import sqlite as sqlite_store
from gpubench.store.kinds import redact, scheme_of, sqlite_path, store_class
from gpubench.store.postgres import PostgresStore
from gpubench.store.sqlite import SQLiteStore


def result(i=0, status="ok"):
    spec = CaseSpec.make("matmul", "numpy", "cpu", "float32", {"m": i + 1, "n": 2, "k": 2})
    if status == "ok":
        return CaseResult(spec=spec, status="ok", samples=(1e-3, 2e-3), flops=8.0, rel_error=0.0, tolerance=1e-5)
    return CaseResult(spec=spec, status=status, error="because")


def old_store(location: str, version: int, statements: list[str] = ()) -> None:
    """A store at schema ``version`` (made by the migrations of that time), then ``statements`` run in it."""
    if scheme_of(location) == "sqlite":
        db = sqlite3.connect(location)
        for v in range(min(version, SCHEMA_VERSION)):
            db.executescript(sqlite_store.MIGRATIONS[v].replace("{fill}", ""))
        db.execute(f"PRAGMA user_version = {version}")
        for s in statements:
            db.execute(s)
        db.commit()
        db.close()
        return
    import psycopg

    with psycopg.connect(location, autocommit=True) as conn:
        conn.execute("CREATE TABLE gpubench_schema (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO gpubench_schema VALUES (%s)", (version,))
        for v in range(min(version, SCHEMA_VERSION)):
            for statement in pg_store.MIGRATIONS[v].replace("{fill}", "").split(";"):
                if statement.strip():
                    conn.execute(statement)
        for s in statements:
            conn.execute(s)


# --- the factory ---------------------------------------------------------------------------------

def test_the_location_picks_the_kind(tmp_path, monkeypatch):
    assert store_class(str(tmp_path / "s.sqlite")) is SQLiteStore
    assert store_class(tmp_path / "s.sqlite") is SQLiteStore
    assert store_class("sqlite:///results/s.sqlite") is SQLiteStore
    assert store_class("postgresql://u@h/db") is PostgresStore and store_class("postgres://h/db") is PostgresStore
    assert sqlite_path("sqlite:///results/s.sqlite").as_posix() == "results/s.sqlite"
    assert sqlite_path("sqlite:////srv/s.sqlite").as_posix() == "/srv/s.sqlite"
    with pytest.raises(UsageError, match=r"unknown kind of store 'mysql://'.*known: a path, sqlite://"):
        open_store("mysql://u:secret@h/db")
    with pytest.raises(UsageError, match="unknown kind of store") as info:
        open_store("mysql://u:secret@h/db")
    assert "secret" not in str(info.value)
    monkeypatch.setenv("GPUBENCH_STORE", f"sqlite:///{tmp_path}/env.sqlite")
    with open_store() as store:
        assert isinstance(store, SQLiteStore) and store.path == tmp_path / "env.sqlite"
    with ResultStore(tmp_path / "same.sqlite") as store:  # the class itself builds the kind the location names
        assert type(store) is SQLiteStore


@pytest.mark.parametrize("text, shown", [
    ("postgresql://alice:s3cret@db.example:5432/bench", "postgresql://alice:***@db.example:5432/bench"),
    ("gpubench run --store=postgres://a:b:c@h/d --quick", "gpubench run --store=postgres://a:***@h/d --quick"),
    ("postgresql://alice@h/db?sslmode=require&password=s3cret", "postgresql://alice@h/db?sslmode=require&password=***"),
    ("host=h dbname=d password='it\\'s a pw' user=u", "host=h dbname=d password=*** user=u"),
    ("postgresql://h:5432/db", "postgresql://h:5432/db"),
    ("results/gpubench.sqlite", "results/gpubench.sqlite"),
])
def test_passwords_are_redacted(text, shown):
    assert redact(text) == shown


# --- every kind ----------------------------------------------------------------------------------

def test_round_trip(store_location):
    with open_store(store_location) as store:
        assert store.schema_version == SCHEMA_VERSION
        run = store.begin_run("matmul", baseline="numpy", environment={"cpu": {"model": "x"}, "hostname": "h1"},
                              settings={"budget_s": 0.5})
        store.add_result(run, result(0))
        store.add_result(run, result(1, "skipped"))
        store.add_ceiling(run, "cpu", "peak_flops", 123.5, "GFLOP/s", dtype="float32", method="m", device_name="CPU")
        store.finish_run(run)
    with open_store(store_location, create=False) as store:
        info = store.run("latest")
        assert (info.id, info.status, info.suite, info.baseline) == (run, "complete", "matmul", "numpy")
        assert info.environment == {"cpu": {"model": "x"}, "hostname": "h1"} and info.settings == {"budget_s": 0.5}
        assert len(info.uuid) == 36 and store.run_by_uuid(info.uuid) == info and store.run_by_uuid("x") is None
        assert store.results(run) == [result(0), result(1, "skipped")]
        assert store.status_counts() == {run: {"ok": 1, "skipped": 1}}
        assert store.count_results() == 2 and store.count_results(run) == 2
        assert store.ceilings(run) == [{"device": "cpu", "kind": "peak_flops", "dtype": "float32", "value": 123.5,
                                        "unit": "GFLOP/s", "method": "m", "device_name": "CPU",
                                        "quality": "measured"}]
    with open_store(store_location, readonly=True) as store:
        assert store.results(run) == [result(0), result(1, "skipped")]
        assert store.applicable_ceilings(store.run())[1] == run


def test_run_references(store_location):
    with open_store(store_location) as store:
        a = store.begin_run("a")
        b = store.begin_run("b")
        assert store.run().id == b and store.run("latest~1").id == a and store.run(str(a)).id == a
        for bad in ("latest~9", "99", "x", "latest~x", "latest~-1"):
            with pytest.raises(UsageError):
                store.run(bad)


def test_missing_store_is_a_usage_error(store_location):
    with pytest.raises(UsageError, match="no results store"):
        open_store(store_location, create=False)
    with pytest.raises(UsageError, match="no results store"):
        open_store(store_location, readonly=True)


def test_writes_through_a_read_only_open_are_refused(store_location):
    from gpubench.errors import StoreReadOnly

    open_store(store_location).close()
    with open_store(store_location, readonly=True) as store:
        with pytest.raises(StoreReadOnly, match="is read-only"):
            store.begin_run("x")


@pytest.mark.parametrize("version", [1, 3])
def test_migration_keeps_data_and_reads_the_old_schema_as_it_is(store_location, version):
    insert = "INSERT INTO runs (started_at, status, suite) VALUES ('2026-01-01T00:00:00+00:00', 'complete', 'old')"
    old_store(store_location, version, [insert, insert])
    with open_store(store_location, readonly=True) as store:  # read as it is: never migrated
        assert store.schema_version == version
        derived = [r.uuid for r in store.runs()]
        assert len(set(derived)) == 2 and all(len(u) == 36 for u in derived)  # identical runs, distinct ids
        assert store.run().suite == "old" and store.ceilings(1) == []
    with open_store(store_location) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert store.run().suite == "old"
        assert [r.uuid for r in store.runs()] == derived  # the migration stores the very same ids
        store.add_ceiling(store.run().id, "cpu", "mem_bw", 40.0, "GB/s", method="saxpy")
        assert store.ceilings(store.run().id)[0]["value"] == 40.0


def test_newer_schema_is_refused(store_location):
    old_store(store_location, SCHEMA_VERSION + 1)
    for readonly in (False, True):
        with pytest.raises(GpubenchError, match="newer than this gpubench"):
            open_store(store_location, readonly=readonly)


def test_transaction_is_all_or_nothing(store_location):
    with open_store(store_location) as store:
        with pytest.raises(RuntimeError, match="half way"):
            with store.transaction():
                run = store.begin_run("t")
                store.add_result(run, result(0))
                raise RuntimeError("half way")
        assert store.runs() == [] and store.count_results() == 0
        with store.transaction():
            run = store.begin_run("t")
            with store.transaction():  # joins the enclosing one
                store.add_result(run, result(0))
            store.finish_run(run)
        assert store.run().status == "complete" and store.count_results() == 1


def test_no_password_is_stored(store_location):
    secret = "postgresql://alice:hunter2-secret@db.example/bench"
    with open_store(store_location) as store:
        run = store.begin_run("t", command=f"gpubench run --store {secret}", label=f"to {secret}",
                              settings={"store": secret}, environment={"note": "password=hunter2-secret x"})
        store.update_environment(run, {"store": secret})
        store.finish_run(run, "failed", f"could not reach {secret}")
        info = store.run(run)
    assert "hunter2-secret" not in repr(info)
    assert info.command == "gpubench run --store postgresql://alice:***@db.example/bench"


def test_runs_lists_every_run(store_location):
    import json
    import subprocess
    import sys

    from conftest import run_gpubench
    from synthetic_results import synthetic_run

    with open_store(store_location) as s:
        synthetic_run(s, 40, label="first")
        synthetic_run(s, 40, seed=2, gpu=False)
        s.begin_run("alive")  # this process lives on: still running
    # A run whose process ended without finishing it: abandoned.
    code = f"from gpubench.store import open_store; open_store({store_location!r}).begin_run('gone')"
    subprocess.run([sys.executable, "-c", code], check=True)
    proc = run_gpubench("runs", "--store", store_location)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["run", "started", "suite", "label", "status", "results", "machine", "note"]
    assert "first" in lines[2] and "complete" in lines[2] and "Test CPU 9000; GPU: NVIDIA H100 80GB HBM3" in lines[2]
    assert " running " in lines[4] and " abandoned " in lines[5] and "is gone" in lines[5]
    runs = json.loads(run_gpubench("runs", "--json", "--store", store_location).stdout)
    assert [r["status"] for r in runs] == ["complete", "complete", "running", "abandoned"]
    assert runs[0]["results"] == dict(sorted(runs[0]["results"].items())) and sum(runs[0]["results"].values()) > 30
    assert runs[1]["machine"] == {"cpu": "Test CPU 9000", "gpus": [], "hostname": "synthetic-host"}


# --- kind-specific -------------------------------------------------------------------------------

def test_not_a_sqlite_store(tmp_path):
    p = tmp_path / "junk.sqlite"
    p.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(UsageError, match="not a gpubench store"):
        open_store(p)


def test_a_postgresql_database_with_tables_of_its_own_is_not_taken_over(postgres_url):
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE runs (x INTEGER)")
    with pytest.raises(UsageError, match="not a gpubench store"):
        open_store(postgres_url)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        assert conn.execute("SELECT to_regclass('gpubench_schema')").fetchone()[0] is None


def test_postgresql_passwords_work_and_never_show(postgres_cluster, monkeypatch):
    from pg_cluster import PASSWORD, PASSWORD_USER

    from gpubench.errors import StoreError

    url = postgres_cluster.new_store_url(user=PASSWORD_USER, password=PASSWORD)
    with open_store(url) as store:
        assert PASSWORD not in store.location and PASSWORD not in repr(store)
        store.begin_run("t", command=f"gpubench run --store {url}")
        assert PASSWORD not in repr(store.runs())
    bare = url.replace(f":{PASSWORD}@", "@")
    monkeypatch.setenv("PGPASSWORD", PASSWORD)  # libpq's usual ways work: PGPASSWORD, ~/.pgpass, a service file
    with open_store(bare, readonly=True) as store:
        assert store.run().suite == "t"
    monkeypatch.setenv("PGPASSWORD", "wrong")
    with pytest.raises(StoreError, match="password authentication failed") as info:
        open_store(url.replace(PASSWORD, "wrong-Pw-1"))
    assert "wrong-Pw-1" not in str(info.value) and str(info.value).count("\n") == 0


def test_a_postgresql_role_that_may_only_read_is_refused_before_writing(postgres_cluster):
    from pg_cluster import PASSWORD, PASSWORD_USER

    from gpubench.errors import StoreReadOnly

    url = postgres_cluster.new_store_url()
    open_store(url).close()
    schema = url.rsplit("%3D", 1)[1]
    postgres_cluster.execute(f"GRANT USAGE ON SCHEMA {schema} TO {PASSWORD_USER}", "gpubench")
    postgres_cluster.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {PASSWORD_USER}", "gpubench")
    reader = url.replace("postgres@", f"{PASSWORD_USER}:{PASSWORD}@")
    with open_store(reader, readonly=True) as store:
        assert store.runs() == []
    with pytest.raises(StoreReadOnly, match=f"read-only for user {PASSWORD_USER}") as info:
        open_store(reader)
    assert PASSWORD not in str(info.value)


def test_a_postgresql_connection_lost_between_writes_is_opened_again(postgres_cluster, postgres_url):
    with open_store(postgres_url) as store:
        run = store.begin_run("t")
        pid = store.conn.info.backend_pid
        postgres_cluster.execute(f"SELECT pg_terminate_backend({pid})")
        with pytest.raises(Exception):  # noqa: B017 - the statement that meets the dead link fails, in one line
            store.add_result(run, result(0))
        store.add_result(run, result(1))  # the next one reconnects
        store.finish_run(run)
        assert store.count_results(run) == 1 and store.run().status == "complete"


# --- concurrent writers --------------------------------------------------------------------------

def _writer(location, n, barrier):
    store = open_store(location)
    run = store.begin_run("concurrent")
    barrier.wait(timeout=120)  # a writer that failed to open breaks the barrier, rather than hanging the others
    for i in range(n):
        store.add_result(run, result(i))
    store.finish_run(run)
    store.close()


def test_a_sqlite_store_another_process_creates_while_this_one_looks_is_opened(tmp_path, monkeypatch):
    """Two runs start on a new store file at once. The other one commits the new store between this one's two
    looks at the file (its tables, its version): this one must open that store, not call it another database."""
    path = tmp_path / "s.sqlite"
    real = SQLiteStore._connect_reader

    class Answer:
        def __init__(self, rows):
            self.rows = rows

        def fetchone(self):
            return self.rows[0] if self.rows else None

        def fetchall(self):
            return self.rows

        def __iter__(self):
            return iter(self.rows)

    class Between:
        """A reader connection that lets the other process commit its store after the first statement."""

        def __init__(self, db):
            self.db, self.statements = db, 0

        def execute(self, *args):
            cursor = self.db.execute(*args)
            out = Answer(cursor.fetchall())  # the statement is done before the other process writes
            cursor.close()
            self.statements += 1
            if self.statements == 1:
                monkeypatch.setattr(SQLiteStore, "_connect_reader", real)
                other = open_store(path)
                other.finish_run(other.begin_run("other process"))
                other.close()
            return out

        def __getattr__(self, name):
            return getattr(self.db, name)

    def reader(self):
        return Between(real(self))

    # The file must hold something for the opener to look at it first: a store with no tables yet, as the other
    # process leaves it while it waits for its migration lock.
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 0")
    db.execute("CREATE TABLE scratch (x)")
    db.execute("DROP TABLE scratch")
    db.close()
    monkeypatch.setattr(SQLiteStore, "_connect_reader", reader)
    with open_store(path) as store:
        assert [r.suite for r in store.runs()] == ["other process"]


@pytest.mark.parametrize("writers", [2, 8])
def test_concurrent_writers_lose_nothing(store_location, writers):
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(writers)
    n = 400 // writers
    procs = [ctx.Process(target=_writer, args=(store_location, n, barrier)) for _ in range(writers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(180)
        assert p.exitcode == 0
    with open_store(store_location, readonly=True) as store:
        runs = store.runs()
        assert len(runs) == writers and all(r.status == "complete" for r in runs)
        assert [store.count_results(r.id) for r in runs] == [n] * writers
        assert len({r.uuid for r in runs}) == writers and {r.pid for r in runs} != {os.getpid()}

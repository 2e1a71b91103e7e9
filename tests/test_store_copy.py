"""``gpubench store copy``: runs from a SQLite file into PostgreSQL and back, idempotent (copying twice
adds nothing), a run the same run in every store."""

from __future__ import annotations

import multiprocessing
import sqlite3
import subprocess
import sys

import pytest
from synthetic_results import calibration_run, synthetic_run
from test_store import old_store

from gpubench.store import open_store
from gpubench.store.copy import copy_runs


def contents(location: str) -> list[tuple]:
    """Every run of a store as it would be compared across stores: everything but the store's own ids."""
    with open_store(location, readonly=True) as store:
        out = []
        for r in store.runs():
            results = [x.to_dict() for x in store.results(r.id)]
            out.append((r.uuid, r.started_at, r.finished_at, r.status, r.suite, r.label, r.baseline, r.command,
                        r.settings, r.environment, r.pid, r.host, r.reason, results, store.ceilings(r.id)))
        return out


def filled_sqlite(path) -> str:
    with open_store(path) as store:
        calibration_run(store)
        synthetic_run(store, 60, label="one")
        synthetic_run(store, 40, seed=1, gpu=False, hostname="other-host")
        store.begin_run("still-running")  # this process lives on: not finished, not copied
    subprocess.run([sys.executable, "-c", f"from gpubench.store import open_store; "
                    f"open_store({str(path)!r}).begin_run('gone')"], check=True)  # abandoned
    return str(path)


def test_sqlite_to_postgresql_and_back(tmp_path, postgres_url, cli):
    src = filled_sqlite(tmp_path / "runner.sqlite")
    with open_store(src, readonly=True) as store:
        n = store.count_results()
    code, out, err = cli("store", "copy", src, postgres_url)
    assert code == 0, err
    assert out.startswith(f"copied 4 runs ({n} results) from {src} to postgresql://") and "; 0 already there" in out
    assert "run 4 (still-running) is still running: not copied" in err
    code, out, err = cli("store", "copy", src, postgres_url)
    assert code == 0 and out.startswith("copied 0 runs (0 results)") and "; 4 already there" in out

    copied = contents(postgres_url)
    source = [c for c in contents(src) if c[4] != "still-running"]
    gone = source[-1]
    assert copied[-1][3:5] == ("failed", "gone") and copied[-1][12].startswith("abandoned: the process that ran it")
    assert copied[:-1] == source[:-1] and copied[-1][:3] == gone[:3] and copied[-1][5:12] == gone[5:12]
    with open_store(postgres_url, readonly=True) as team:
        assert team.applicable_ceilings(team.run(2))[1] == 1  # ceilings came along, and still apply

    back = str(tmp_path / "back.sqlite")
    assert cli("store", "copy", postgres_url, back)[1].startswith(f"copied 4 runs ({n} results)")
    assert contents(back) == copied
    code, out, _ = cli("store", "copy", back, src)  # every run is the same run in every store
    assert out.startswith("copied 0 runs") and "4 already there" in out


def test_only_the_named_runs(tmp_path, cli):
    src = filled_sqlite(tmp_path / "a.sqlite")
    dst = str(tmp_path / "b.sqlite")
    code, out, err = cli("store", "copy", src, dst, "--run", "2", "--run", "latest~2")
    assert code == 0 and out.startswith("copied 2 runs"), err
    with open_store(dst, readonly=True) as store:
        assert [r.label for r in store.runs()] == ["one", ""]
    code, out, err = cli("store", "copy", src, dst, "--run", "99")
    assert code == 2 and "no run 99" in err


def test_runs_of_an_old_store_keep_their_identity_through_its_migration(tmp_path, postgres_url):
    path = str(tmp_path / "old.sqlite")
    row = ("INSERT INTO runs (started_at, status, suite, pid, host) VALUES ('2026-01-01T00:00:00+00:00', 'complete',"
           " 'old', 42, 'h')")
    old_store(path, 3, [row, row.replace("'old'", "'older'")])
    with open_store(path, readonly=True) as src, open_store(postgres_url) as dst:  # read as it is: schema 3
        assert src.schema_version == 3 and len(copy_runs(src, dst).copied) == 2
    open_store(path).close()  # migrated to schema 4 by a write
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 4
    with open_store(path, readonly=True) as src, open_store(postgres_url) as dst:
        report = copy_runs(src, dst)
        assert report.copied == {} and report.present == [1, 2]


def _copy(src: str, dst: str, barrier) -> None:
    with open_store(src, readonly=True) as s, open_store(dst) as d:
        barrier.wait()
        copy_runs(s, d)


@pytest.mark.parametrize("writers", [4])
def test_concurrent_copies_of_the_same_runs_store_each_once(tmp_path, postgres_url, writers):
    src = str(tmp_path / "a.sqlite")
    with open_store(src) as store:
        for i in range(5):
            synthetic_run(store, 30, seed=i, gpu=False)
    open_store(postgres_url).close()
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(writers)
    procs = [ctx.Process(target=_copy, args=(src, postgres_url, barrier)) for _ in range(writers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
        assert p.exitcode == 0
    assert contents(postgres_url) == contents(src)

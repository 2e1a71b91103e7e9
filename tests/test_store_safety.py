"""The SQLite store under stress: read-only files, directories and mounts; refused stores left untouched;
concurrent creation; schema 3 (issue 11, defects 5-7)."""

from __future__ import annotations

import multiprocessing
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import REPO, run_gpubench
from synthetic_results import synthetic_run

from gpubench.errors import GpubenchError, StoreReadOnly
from gpubench.records import CaseResult, CaseSpec
from gpubench.store import SCHEMA_VERSION, ResultStore
from gpubench.store.sqlite import MIGRATIONS


def result(i: int = 0) -> CaseResult:
    spec = CaseSpec.make("matmul", "numpy", "cpu", "float32", {"m": i + 1, "n": 2, "k": 2})
    return CaseResult(spec=spec, status="ok", samples=(1e-3, 2e-3), flops=8.0, rel_error=0.0, tolerance=1e-5)


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file in a directory with its bytes."""
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


# --- read-only stores ------------------------------------------------------------------------------

@pytest.fixture
def shared_dir():
    """A directory whose permissions the tests change (cleaned up whatever they leave)."""
    path = Path(tempfile.mkdtemp(prefix="gpubench-ro-"))
    yield path
    subprocess.run(["chmod", "-R", "u+rwx", str(path)], check=False)
    subprocess.run(["rm", "-rf", str(path)], check=False)


def _drop_root_file_powers() -> None:
    """In the child: take the capabilities that let root ignore file permissions out of its bounding set."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2, 3):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "PR_CAPBSET_DROP failed")


def as_other_user() -> dict:
    """Subprocess arguments under which file permissions hold, also for root (none needed otherwise)."""
    if os.geteuid() != 0:
        return {}
    try:
        subprocess.run([sys.executable, "-c", "pass"], preexec_fn=_drop_root_file_powers, check=True)
    except (subprocess.SubprocessError, OSError) as exc:
        pytest.skip(f"root here cannot give up its file capabilities: {exc}")
    return {"preexec_fn": _drop_root_file_powers}


def gpubench_as_reader(*args: str, **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ, HOME=tempfile.gettempdir())
    env.pop("GPUBENCH_STORE", None)
    return subprocess.run([sys.executable, "-m", "gpubench", *args], capture_output=True, text=True, timeout=300,
                          env=env, cwd=REPO, **kw)


def errors_of(stderr: str) -> str:
    """stderr without the busy-machine warning a loaded test machine adds before the store is opened."""
    return "".join(line for line in stderr.splitlines(keepends=True) if "warning: the machine is busy" not in line)


def make_store(path: Path) -> None:
    with ResultStore(path) as store:
        synthetic_run(store, 30, gpu=False)
        synthetic_run(store, 30, seed=1, gpu=False)


def check_reads_work_and_writes_refused(store: Path, out: Path, **kw) -> None:
    for args in (["show"], ["runs"], ["runs", "--json"], ["export", "--format", "csv"],
                 ["report", "-o", str(out / "r.html")], ["compare", "1", "2"]):
        proc = gpubench_as_reader(*args, "--store", str(store), **kw)
        assert proc.returncode in (0, 1) and "error" not in proc.stderr, (args, proc.stderr)  # compare: 1 = slower
        assert proc.stdout
    assert (out / "r.html").stat().st_size > 10_000
    for args in (["run", "--suite", "saxpy", "--quick", "--backend", "numpy"], ["calibrate", "--quick"]):
        proc = gpubench_as_reader(*args, "--store", str(store), **kw)
        assert proc.returncode == 2 and errors_of(proc.stderr) == f"gpubench: error: store {store} is read-only\n", \
            proc.stderr


@pytest.mark.parametrize("layout", ["read-only file", "read-only directory"])
def test_read_commands_work_on_a_store_that_cannot_be_written(shared_dir, layout):
    data, out = shared_dir / "data", shared_dir / "out"
    data.mkdir()
    out.mkdir(mode=0o777)
    out.chmod(0o777)
    store = data / "s.sqlite"
    make_store(store)
    assert not Path(f"{store}-wal").exists()  # closed cleanly: a WAL store with no -shm to map
    if layout == "read-only file":
        data.chmod(0o777)
        store.chmod(0o444)
    else:
        store.chmod(0o666)
        data.chmod(0o555)
    before = store.read_bytes()
    check_reads_work_and_writes_refused(store, out, **as_other_user())
    assert store.read_bytes() == before
    if layout == "read-only directory":
        assert [p.name for p in data.iterdir()] == ["s.sqlite"]


def test_read_commands_leave_a_writable_store_as_they_found_it(tmp_path):
    store = tmp_path / "s.sqlite"
    make_store(store)
    before = snapshot(tmp_path)
    for args in (["show"], ["runs"], ["export"]):
        assert run_gpubench(*args, "--store", str(store)).returncode == 0
    assert snapshot(tmp_path) == before


@pytest.fixture
def read_only_mount(shared_dir):
    """A read-only bind mount of a directory (root only; skipped where mounting is not allowed)."""
    if os.geteuid() != 0:
        pytest.skip("a read-only mount needs root")
    source, mnt = shared_dir / "source", shared_dir / "mnt"
    source.mkdir()
    mnt.mkdir()
    ok = subprocess.run(["mount", "--bind", str(source), str(mnt)], capture_output=True)
    if ok.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {ok.stderr.decode().strip()}")
    try:
        if subprocess.run(["mount", "-o", "remount,bind,ro", str(mnt)], capture_output=True).returncode != 0:
            pytest.skip("cannot remount read-only here")
        yield source, mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_read_commands_work_on_a_read_only_mount(read_only_mount, shared_dir):
    source, mnt = read_only_mount
    make_store(source / "s.sqlite")
    out = shared_dir / "out"
    out.mkdir()
    check_reads_work_and_writes_refused(mnt / "s.sqlite", out)  # as root: the mount, not permissions, says no
    with pytest.raises(StoreReadOnly, match="is read-only"):
        ResultStore(mnt / "s.sqlite")


def test_writes_through_a_read_only_open_are_refused(tmp_path):
    make_store(tmp_path / "s.sqlite")
    with ResultStore(tmp_path / "s.sqlite", readonly=True) as store:
        with pytest.raises(StoreReadOnly, match="is read-only"):
            store.begin_run("x")


def test_creating_a_store_in_a_read_only_place_is_one_line(read_only_mount):
    _, mnt = read_only_mount
    proc = run_gpubench("run", "--suite", "saxpy", "--quick", "--backend", "numpy", "--store", str(mnt / "new.sqlite"))
    assert proc.returncode == 2
    assert re.fullmatch(rf"gpubench: error: cannot create store {mnt}/new.sqlite: .*read-only.*\n", proc.stderr)


# --- a refused store stays untouched ---------------------------------------------------------------

def future_store(path: Path) -> None:
    """A rollback-journal database with a newer schema, as a later gpubench might leave it."""
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, future TEXT)")
    db.execute("INSERT INTO runs (future) VALUES ('x')")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()


def test_a_newer_store_is_refused_and_left_byte_for_byte_untouched(tmp_path, cli):
    future_store(tmp_path / "future.sqlite")
    before = snapshot(tmp_path)
    for readonly in (False, True):
        with pytest.raises(GpubenchError, match="newer than this gpubench"):
            ResultStore(tmp_path / "future.sqlite", readonly=readonly)
    for args in (["show"], ["runs"], ["run", "--suite", "saxpy", "--quick", "--backend", "numpy"]):
        code, _, err = cli(*args, "--store", str(tmp_path / "future.sqlite"))
        assert code == 1 and err.count("\n") == 1 and "newer than this gpubench" in err
    assert snapshot(tmp_path) == before  # no -wal, -shm or -journal either


def test_a_foreign_sqlite_database_is_not_taken_over(tmp_path):
    path = tmp_path / "other.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE mine (x)")
    db.commit()
    db.close()
    before = path.read_bytes()
    with pytest.raises(GpubenchError, match="is not a gpubench store"):
        ResultStore(path)
    assert path.read_bytes() == before


# --- concurrent creation ---------------------------------------------------------------------------

def _first_run(directory: str, rounds: int, barrier, errors) -> None:
    for i in range(rounds):
        barrier.wait()
        try:
            with ResultStore(Path(directory) / f"round{i}.sqlite") as store:
                run = store.begin_run("concurrent")
                store.add_result(run, result(i))
                store.finish_run(run)
        except Exception as exc:  # noqa: BLE001 - reported to the test
            errors.put(f"round {i}: {type(exc).__name__}: {exc}")


def test_eight_concurrent_first_runs_create_one_store(tmp_path):
    """Eight processes open the same new store at the same moment, 25 times over."""
    ctx = multiprocessing.get_context("spawn")
    rounds, n = 25, 8
    barrier, errors = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_first_run, args=(str(tmp_path), rounds, barrier, errors)) for _ in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
    found = []
    while not errors.empty():
        found.append(errors.get())
    assert not found, found
    assert all(p.exitcode == 0 for p in procs)
    for i in range(rounds):
        with ResultStore(tmp_path / f"round{i}.sqlite", readonly=True) as store:
            assert store.schema_version == SCHEMA_VERSION
            runs = store.runs()
            assert len(runs) == n and all(r.status == "complete" for r in runs)
            assert store.count_results() == n


def test_eight_concurrent_first_gpubench_runs(tmp_path):
    store = tmp_path / "s.sqlite"
    suite = tmp_path / "one.toml"
    suite.write_text('name = "one"\nbaseline = "numpy"\n[[cases]]\nworkload = "saxpy"\nbackends = ["numpy"]\n'
                     'dtypes = ["float32"]\nparams = { n = [1000] }\n')
    env = dict(os.environ, GPUBENCH_STORE=str(store))
    procs = [subprocess.Popen([sys.executable, "-m", "gpubench", "run", "--suite", str(suite), "--budget", "0.01"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
             for _ in range(8)]
    outcomes = [(p.wait(300), p.stderr.read()) for p in procs]
    assert all(code == 0 for code, _ in outcomes), outcomes
    with ResultStore(store, readonly=True) as s:
        assert len(s.runs()) == 8 and s.count_results() == 8


# --- schema 3 ---------------------------------------------------------------------------------------

def v2_store(path: Path) -> None:
    db = sqlite3.connect(path)
    db.executescript(MIGRATIONS[0] + MIGRATIONS[1])
    db.execute("PRAGMA user_version = 2")
    db.execute("INSERT INTO runs (started_at, status, suite, environment) VALUES "
               "('2026-01-01T00:00:00+00:00', 'running', 'old', '{\"cpu\": {\"model\": \"Old CPU\"}}')")
    db.execute("INSERT INTO ceilings (run_id, device, kind, dtype, value, unit, method) VALUES "
               "(1, 'cpu', 'peak_flops', 'float32', 100.0, 'GFLOP/s', 'matmul 2048³ via numpy on Old CPU')")
    db.commit()
    db.close()


def test_a_v2_store_is_read_as_it_is_and_migrated_only_by_a_write(tmp_path):
    path = tmp_path / "v2.sqlite"
    v2_store(path)
    before = path.read_bytes()
    with ResultStore(path, readonly=True) as store:
        run = store.run()
        assert (run.suite, run.status, run.pid, run.host, run.reason) == ("old", "running", None, "", "")
        assert store.ceilings(1) == [{"device": "cpu", "kind": "peak_flops", "dtype": "float32", "value": 100.0,
                                      "unit": "GFLOP/s", "method": "matmul 2048³ via numpy on Old CPU",
                                      "device_name": "", "quality": "measured"}]
    assert path.read_bytes() == before
    with ResultStore(path) as store:
        assert store.schema_version == SCHEMA_VERSION == 4
        assert store.ceilings(1)[0]["quality"] == "measured"
        store.add_ceiling(1, "cpu", "mem_bw", 40.0, "GB/s", device_name="Old CPU", quality="provisional")
        assert store.ceilings(1)[1] == {"device": "cpu", "kind": "mem_bw", "dtype": "", "value": 40.0, "unit": "GB/s",
                                        "method": "", "device_name": "Old CPU", "quality": "provisional"}
        with pytest.raises(ValueError, match="unknown ceiling quality"):
            store.add_ceiling(1, "cpu", "mem_bw", 1.0, "GB/s", quality="guessed")
        new = store.begin_run("new")
        assert (store.run(new).pid, store.run(new).status) == (os.getpid(), "running")
        store.finish_run(new, "failed", "because")
        assert (store.run(new).status, store.run(new).reason) == ("failed", "because")


def test_no_module_but_the_store_speaks_sql_to_it():
    offenders = []
    for path in (REPO / "gpubench").rglob("*.py"):
        if path.parent.name == "store":
            continue
        text = path.read_text()
        if re.search(r"\.db\.execute|BEGIN IMMEDIATE|\bCOMMIT\b|sqlite3\.connect|\bpsycopg\b", text):
            offenders.append(str(path.relative_to(REPO)))
    assert offenders == []

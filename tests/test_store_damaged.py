"""A damaged SQLite store (issue 22, item 4): write commands refuse it in one line and leave its bytes as
they were; read commands say what is damaged and serve every row that can still be read."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from synthetic_results import synthetic_run

from gpubench.store import open_store

PAGE = 4096

BENCH_JSON = {
    "machine_info": {"node": "h", "cpu": {"brand_raw": "Test CPU"}}, "commit_info": {},
    "datetime": "2026-01-01T00:00:00", "version": "4.0.0",
    "benchmarks": [{
        "group": None, "name": "test_sort", "fullname": "t.py::test_sort", "params": None, "param": None,
        "extra_info": {}, "options": {"timer": "perf_counter", "min_rounds": 3, "max_time": 1.0, "warmup": False},
        "stats": {"min": 0.001, "max": 0.002, "mean": 0.0015, "stddev": 0.0005, "rounds": 3, "median": 0.0015,
                  "iqr": 0.0005, "q1": 0.001, "q3": 0.002, "iqr_outliers": 0, "stddev_outliers": 0,
                  "outliers": "0;0", "ld15iqr": 0.001, "hd15iqr": 0.002, "ops": 666.0, "total": 0.0045,
                  "data": [0.001, 0.0015, 0.002], "iterations": 1}}],
}


@pytest.fixture(scope="module")
def sound_store(tmp_path_factory) -> tuple[Path, int]:
    """A store of two runs (closed cleanly: no -wal) and its number of results."""
    path = tmp_path_factory.mktemp("sound") / "s.sqlite"
    with open_store(path) as store:
        synthetic_run(store, 150, gpu=False)
        synthetic_run(store, 150, seed=1, gpu=False)
        total = store.count_results()
    return path, total


def damaged_copy(sound: Path, directory: Path, page: int | str) -> Path:
    """A copy of ``sound`` with 4 KiB of one page overwritten (``page``: an index, ``middle`` or ``last``)."""
    path = directory / "damaged.sqlite"
    data = bytearray(sound.read_bytes())
    pages = len(data) // PAGE
    index = {"middle": pages // 2, "last": pages - 1}.get(page, page)
    data[index * PAGE:(index + 1) * PAGE] = random.Random(index).randbytes(PAGE)
    path.write_bytes(bytes(data))
    return path


def files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


@pytest.mark.parametrize("page", [0, 1, 3, "middle", "last"])
def test_write_commands_refuse_a_damaged_store_and_leave_it_as_it_was(sound_store, tmp_path, cli, page):
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    store = damaged_copy(sound_store[0], store_dir, page)
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps(BENCH_JSON))
    before = files(store_dir)
    for args in (["import", str(bench)], ["run", "--suite", "saxpy", "--quick", "--backend", "numpy"],
                 ["calibrate", "--quick", "--backend", "numpy"]):
        code, out, err = cli(*args, "--store", str(store))
        assert code != 0, (args, out, err)
        assert err.count("\n") == 1 and err.startswith("gpubench: error: ") and "damaged" in err, (args, err)
        assert out == ""
        assert files(store_dir) == before  # the same bytes, and no -wal, -shm or -journal beside them


def test_a_sound_store_is_still_written(sound_store, tmp_path, cli):
    store = tmp_path / "s.sqlite"
    store.write_bytes(sound_store[0].read_bytes())
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps(BENCH_JSON))
    code, out, err = cli("import", str(bench), "--store", str(store))
    assert code == 0 and out.strip() == "3", err


@pytest.mark.parametrize("page, lost", [("middle", True), ("last", True), (4, False)])  # 4: the index of run ids
def test_read_commands_say_what_is_damaged_and_serve_the_rest(sound_store, tmp_path, cli, page, lost):
    sound, total = sound_store
    store = damaged_copy(sound, tmp_path, page)
    code, out, err = cli("export", "--run", "all", "--store", str(store))
    assert code == 0, err
    assert err.startswith(f"gpubench: warning: store {store} is damaged (") and err.count("\n") == 1
    assert "showing what can still be read" in err
    records = json.loads(out)["results"]
    if lost:
        assert 0.9 * total <= len(records) < total  # one page of 4 KiB holds a few records
    else:
        assert len(records) == total  # a damaged index loses nothing: the table is read without it
    with open_store(sound, readonly=True) as whole:
        known = {json.dumps(r.to_dict(), sort_keys=True) for run in whole.runs() for r in whole.results(run.id)}
    with open_store(store, readonly=True) as damaged:
        kept = [r for run in damaged.runs() for r in damaged.results(run.id)]
        assert damaged.damage
    assert kept and all(json.dumps(r.to_dict(), sort_keys=True) in known for r in kept)  # nothing made up
    for args in (["runs"], ["show", "1"], ["show", "2"]):
        code, out, err = cli(*args, "--store", str(store))
        assert code == 0 and out, (args, err)


def test_store_copy_rescues_what_a_damaged_store_still_holds(sound_store, tmp_path, cli):
    sound, total = sound_store
    store = damaged_copy(sound, tmp_path, "middle")
    rescued = tmp_path / "rescued.sqlite"
    code, out, err = cli("store", "copy", str(store), str(rescued))
    assert code == 0 and "damaged" in err and out.startswith("copied 2 runs"), (out, err)
    with open_store(rescued, readonly=True) as s:
        assert 0.9 * total <= s.count_results() < total
    code, out, err = cli("store", "copy", str(store), str(rescued))
    assert code == 0 and out.startswith("copied 0 runs") and "2 already there" in out


def test_a_store_whose_first_page_is_gone_is_one_line_for_reads_too(sound_store, tmp_path, cli):
    store = damaged_copy(sound_store[0], tmp_path, 0)
    code, out, err = cli("runs", "--store", str(store))
    assert code != 0 and err.count("\n") == 1 and "damaged" in err

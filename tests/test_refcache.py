"""The reference cache: content-addressed, verified on read, atomic, bounded (LRU), shared safely; and the
case path's use of it (one reference per problem, across backends, processes and runs)."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import numpy as np
import pytest

from gpubench import refcache
from gpubench.case import problem_seed, run_case
from gpubench.errors import UsageError
from gpubench.harness import HarnessSettings
from gpubench.records import CaseSpec
from gpubench.refcache import RefCache, key_of
from gpubench.workloads import get_workload

QUICK = HarnessSettings(warmup_s=0.0, min_sample_s=0.001, min_samples=3, max_samples=5, budget_s=0.05)


def _key(i: int) -> str:
    return key_of({"test": i})


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    """A fresh cache directory as $GPUBENCH_REFCACHE, and an empty in-process memo."""
    path = tmp_path / "refcache"
    monkeypatch.setenv(refcache.ENV, str(path))
    refcache.memo_clear()
    yield path
    refcache.memo_clear()


# --- the cache directory --------------------------------------------------------------------------
def test_put_then_get_returns_the_same_array_read_only(tmp_path):
    cache = RefCache(tmp_path)
    a = np.random.default_rng(0).random((3, 5))
    assert cache.get(_key(1)) is None
    assert cache.put(_key(1), a, {"workload": "matmul"})
    got = cache.get(_key(1))
    assert got.dtype == a.dtype and got.shape == a.shape and np.array_equal(got, a)
    assert not got.flags.writeable
    assert cache.stats().entries == 1 and cache.stats().bytes > a.nbytes
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]  # written atomically: no leftovers


@pytest.mark.parametrize("damage", ["flip_payload", "truncate", "magic", "header", "other_key", "empty"])
def test_a_corrupt_entry_is_never_trusted_and_is_removed(tmp_path, damage):
    cache = RefCache(tmp_path)
    a = np.arange(1000, dtype=np.float64)
    cache.put(_key(2), a)
    path = cache.path_of(_key(2))
    data = bytearray(path.read_bytes())
    if damage == "flip_payload":
        data[-17] ^= 0x01  # one bit of one float
    elif damage == "truncate":
        data = data[:-8]
    elif damage == "magic":
        data[0] ^= 0xFF
    elif damage == "header":
        data[len(refcache._MAGIC) + 12] ^= 0xFF
    elif damage == "other_key":
        # A whole, valid entry of another key under this key's name (a renamed file).
        cache.put(_key(3), a)
        data = bytearray(cache.path_of(_key(3)).read_bytes())
    else:
        data = bytearray()
    path.write_bytes(bytes(data))
    assert cache.get(_key(2)) is None
    assert not path.exists() and "corrupt" in cache.last_error


def test_least_recently_used_entries_are_evicted_past_the_bound(tmp_path):
    one = np.zeros(1000)  # 8000 bytes plus a header
    cache = RefCache(tmp_path, max_bytes=3 * 8500)
    for i in range(3):
        assert cache.put(_key(i), one + i)
        os.utime(cache.path_of(_key(i)), (1000 + i, 1000 + i))  # distinct "last used" times
    assert cache.get(_key(0)) is not None  # used now: the most recent
    assert cache.put(_key(3), one + 3)
    assert cache.path_of(_key(0)).exists() and cache.path_of(_key(3)).exists()
    assert not cache.path_of(_key(1)).exists()  # the least recently used went first
    assert cache.stats().bytes <= cache.max_bytes
    assert not cache.put(_key(9), np.zeros(10_000))  # larger than the whole bound: not stored


def test_stale_temporary_files_of_crashed_writers_are_removed(tmp_path):
    cache = RefCache(tmp_path)
    stale, fresh = tmp_path / ".tmp-abc-1-00", tmp_path / ".tmp-def-2-00"
    stale.write_bytes(b"partial")
    fresh.write_bytes(b"partial")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    cache.put(_key(4), np.ones(3))
    assert not stale.exists() and fresh.exists()  # a fresh one may be another run writing now
    assert cache.stats().entries == 1


def test_an_unwritable_directory_is_a_miss_not_a_failure(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    cache = RefCache(blocker / "refcache")
    assert not cache.put(_key(5), np.ones(3))
    assert "cannot write" in cache.last_error
    assert cache.get(_key(5)) is None


def _hammer(root: str, worker: int, rounds: int) -> int:
    """Write, read and evict the same few keys as the other processes; return how many reads were wrong."""
    cache = RefCache(root, max_bytes=5 * 80_500)
    wrong = 0
    for i in range(rounds):
        k = (i + worker) % 8
        expected = np.full(10_000, float(k))
        got = cache.get(_key(k))
        if got is not None and not np.array_equal(got, expected):
            wrong += 1
        cache.put(_key(k), expected)
    return wrong


def test_several_processes_share_one_cache_safely(tmp_path):
    """Writers, readers and evictors at once: every read is whole and right, or a miss."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        wrong = pool.starmap(_hammer, [(str(tmp_path), w, 60) for w in range(4)])
    assert wrong == [0, 0, 0, 0]
    cache = RefCache(tmp_path, max_bytes=5 * 80_500)
    assert cache.stats().bytes <= cache.max_bytes + 80_500 * 4  # each writer evicts after its own write
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


# --- where it is --------------------------------------------------------------------------------------
def test_location_option_then_environment_then_beside_the_store(tmp_path, monkeypatch):
    monkeypatch.delenv(refcache.ENV, raising=False)
    monkeypatch.delenv("GPUBENCH_STORE", raising=False)
    assert refcache.resolve() == Path("results") / "refcache"
    assert refcache.resolve(None, tmp_path / "s.sqlite") == tmp_path / "refcache"
    assert refcache.resolve(None, "postgresql://host/db") == Path("results") / "refcache"
    monkeypatch.setenv("GPUBENCH_STORE", str(tmp_path / "x" / "s.sqlite"))
    assert refcache.resolve() == tmp_path / "x" / "refcache"
    monkeypatch.setenv(refcache.ENV, str(tmp_path / "env"))
    assert refcache.resolve(None, tmp_path / "s.sqlite") == tmp_path / "env"
    assert refcache.resolve(str(tmp_path / "opt")) == tmp_path / "opt"
    assert refcache.resolve("off") is None and refcache.resolve("OFF") is None
    monkeypatch.setenv(refcache.ENV, "off")
    assert refcache.resolve() is None and refcache.from_environment() is None
    with pytest.raises(UsageError):
        refcache.resolve("  ")


def test_the_location_is_handed_to_child_processes_for_the_run_only(tmp_path, monkeypatch):
    monkeypatch.setenv(refcache.ENV, "before")
    with refcache.exported(tmp_path / "c"):
        assert os.environ[refcache.ENV] == str((tmp_path / "c").absolute())
    assert os.environ[refcache.ENV] == "before"
    monkeypatch.delenv(refcache.ENV)
    with refcache.exported(None):
        assert os.environ[refcache.ENV] == "off"
    assert refcache.ENV not in os.environ


def test_sizes_parse_and_a_bad_size_is_a_usage_error(monkeypatch):
    assert refcache.parse_size("2G") == 2 * 2**30 and refcache.parse_size("500M") == 500 * 2**20
    assert refcache.parse_size("1000") == 1000 and refcache.parse_size("1.5GiB") == int(1.5 * 2**30)
    for bad in ("", "-1", "0", "lots", "2X"):
        with pytest.raises(ValueError):
            refcache.parse_size(bad)
    monkeypatch.setenv(refcache.SIZE_ENV, "a lot")
    with pytest.raises(UsageError):
        refcache.max_bytes_from_environment()


# --- one reference per problem ----------------------------------------------------------------------
def test_the_seed_is_the_problems_not_the_backends_or_the_modes():
    mm = get_workload("matmul")
    base = mm.normalize_params({"size": 64})
    seed = problem_seed(mm, base)
    for mode in ({"tf32": True}, {"include_transfer": True}, {"timing": "lecture"}):
        assert problem_seed(mm, mm.normalize_params({"size": 64, **mode})) == seed
    assert problem_seed(mm, mm.normalize_params({"size": 65})) != seed
    conv = get_workload("conv2d")
    shape = {"n": 1, "c": 2, "h": 8, "w": 8, "k": 2, "r": 3, "s": 3}
    assert conv.problem_params(conv.normalize_params({**shape, "layout": "NHWC"}))["layout"] == "NHWC"
    mnist = get_workload("mnist")
    p = mnist.problem_params(mnist.normalize_params({"target_accuracy": 0.5}))
    assert "target_accuracy" not in p and "accuracy_tolerance" not in p and p["epochs"] == 10


def test_every_backend_and_mode_of_a_problem_shares_one_reference(cache_dir, monkeypatch):
    pytest.importorskip("torch")
    mm = get_workload("matmul")
    calls = []
    original = type(mm).reference

    def counted(self, inputs, params):
        calls.append(params["m"])
        return original(self, inputs, params)

    monkeypatch.setattr(type(mm), "reference", counted)
    results = [run_case(CaseSpec.make("matmul", b, "cpu", "float32", {"size": 512, **modes}), QUICK)
               for b, modes in (("numpy", {}), ("torch", {}), ("torch", {"timing": "host_sync"}))]
    assert [r.status for r in results] == ["ok"] * 3, [r.error for r in results]
    assert calls == [512]
    assert [r.metrics["reference_source"] for r in results] == ["computed", "cached", "cached"]
    assert all(r.metrics["reference_s"] >= 0 and r.metrics["check_s"] >= 0 for r in results)
    # Another process (a later run, the next worker) reads it from disk.
    refcache.memo_clear()
    again = run_case(CaseSpec.make("matmul", "numpy", "cpu", "float32", {"size": 512}), QUICK)
    assert again.metrics["reference_source"] == "cached" and calls == [512]
    assert again.rel_error == results[0].rel_error  # same inputs, same reference, same (deterministic) output


def test_a_corrupt_entry_is_recomputed_by_the_case(cache_dir):
    spec = CaseSpec.make("matmul", "numpy", "cpu", "float64", {"size": 512})
    first = run_case(spec, QUICK)
    [entry] = list(cache_dir.glob("*.ref"))
    data = bytearray(entry.read_bytes())
    data[-100] ^= 0x40
    entry.write_bytes(bytes(data))
    refcache.memo_clear()
    second = run_case(spec, QUICK)
    assert second.status == "ok" and second.metrics["reference_source"] == "computed"
    assert second.rel_error == first.rel_error
    assert RefCache(cache_dir).get(entry.stem) is not None  # rewritten whole


def test_cheap_references_are_computed_not_stored(cache_dir):
    small = run_case(CaseSpec.make("matmul", "numpy", "cpu", "float32", {"size": 64}), QUICK)
    saxpy = run_case(CaseSpec.make("saxpy", "numpy", "cpu", "float32", {"n": 2**24, "cache": "hot"}), QUICK)
    assert small.metrics["reference_source"] == "computed" and saxpy.metrics["reference_source"] == "computed"
    assert not cache_dir.exists() or not list(cache_dir.glob("*.ref"))


def test_mnist_trains_its_float64_reference_once_per_problem(cache_dir, monkeypatch):
    """Two backends and two targets of one training: one float64 reference run."""
    pytest.importorskip("torch")
    from gpubench.workloads import mnist

    runs = []
    original = mnist.MnistWorkload.reference

    def counted(self, inputs, params):
        runs.append(params["epochs"])
        return original(self, inputs, params)

    monkeypatch.setattr(mnist.MnistWorkload, "reference", counted)
    small = {"epochs": 1, "train_size": 500, "eval_size": 500, "accuracy_tolerance": 0.1, "target_accuracy": 0.5}
    results = [run_case(CaseSpec.make("mnist", b, "cpu", "float32", {**small, **extra}))
               for b, extra in (("numpy", {}), ("torch", {}), ("numpy", {"target_accuracy": 0.6}))]
    assert [r.status for r in results] == ["ok"] * 3, [(r.error, r.metrics.get("traceback")) for r in results]
    assert runs == [1]
    assert [r.metrics["reference_source"] for r in results] == ["computed", "cached", "cached"]


def test_a_run_hands_its_cache_to_the_workers_and_shows_it(tmp_path, monkeypatch):
    """``--ref-cache DIR``: the worker processes write there; ``env`` and ``runs`` say where it is and how big."""
    from conftest import run_gpubench

    monkeypatch.delenv(refcache.ENV, raising=False)
    store, where = tmp_path / "s.sqlite", tmp_path / "refs"
    suite = tmp_path / "m.toml"
    suite.write_text('name = "m"\n[[cases]]\nworkload = "matmul"\nbackends = ["numpy"]\ndtypes = ["float32"]\n'
                     'params = { size = [512] }\n')
    env = {refcache.ENV: ""}
    proc = run_gpubench("run", "--suite", str(suite), "--quick", "--store", str(store), "--ref-cache", str(where),
                        env=env)
    assert proc.returncode == 0, proc.stderr
    assert len(list(where.glob("*.ref"))) == 1
    shown = run_gpubench("runs", "--store", str(store), env={refcache.ENV: str(where)})
    assert f"reference cache: {where}: 1 reference," in shown.stdout
    # Beside the store by default.
    proc = run_gpubench("run", "--suite", str(suite), "--quick", "--store", str(store), env=env)
    assert proc.returncode == 0, proc.stderr
    assert len(list((tmp_path / "refcache").glob("*.ref"))) == 1
    shown = run_gpubench("env", "--backend", "none", env={refcache.ENV: str(where)})
    assert f"refcache  {where}: 1 reference," in shown.stdout
    shown = run_gpubench("env", "--backend", "none", "--json", env={refcache.ENV: "off"})
    assert '"enabled": false' in shown.stdout


def test_bad_cache_options_are_usage_errors(tmp_path):
    from conftest import run_gpubench

    store = tmp_path / "s.sqlite"
    proc = run_gpubench("run", "--suite", "matmul", "--quick", "--store", str(store), "--ref-cache", "")
    assert proc.returncode == 2 and "--ref-cache" in proc.stderr and not store.exists()
    proc = run_gpubench("run", "--suite", "matmul", "--quick", "--store", str(store),
                        env={refcache.SIZE_ENV: "huge"})
    assert proc.returncode == 2 and refcache.SIZE_ENV in proc.stderr and not store.exists()

"""``gpubench.load``: stored results as a pandas DataFrame, one row per case."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from history_store import commit, history_store  # noqa: E402
from synthetic_results import samples  # noqa: E402

import gpubench  # noqa: E402
from gpubench.errors import GpubenchError, UsageError  # noqa: E402
from gpubench.records import CaseResult, CaseSpec  # noqa: E402

pd = pytest.importorskip("pandas")


def test_package_import_stays_light():
    code = ("import sys, gpubench; gpubench.load; "
            "print([m for m in ('pandas', 'numpy', 'sqlite3', 'gpubench.store') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_load_a_store_of_several_runs(tmp_path):
    path = tmp_path / "s.sqlite"
    history_store(path, n_runs=5).close()
    df = gpubench.load(path)
    assert len(df) == 5 * 4 and sorted(df["run_id"].unique()) == [1, 2, 3, 4, 5]
    # Parameters are columns, run facts are columns, the time is a timestamp.
    assert {"m", "n", "k", "commit", "branch", "machine", "label"} <= set(df.columns)
    assert set(df["m"]) == {256, 512}
    assert df.loc[df["run_id"] == 2, "commit"].iloc[0] == commit(1)
    assert str(df["started_at"].dtype).startswith("datetime64") and df["started_at"].is_monotonic_increasing
    # Each row's median is its samples' median; the speedup pivot is the README's example.
    row = df.iloc[0]
    assert row["median_s"] == pytest.approx(pd.Series(row["samples"]).median())
    pivot = df.pivot_table(index="size", columns="implementation", values="speedup", aggfunc="median")
    assert list(pivot.columns) == ["numpy", "torch"] and (pivot["numpy"] == 1.0).all()
    assert (pivot["torch"] > 1.2).all()


def test_load_one_run_and_a_list(tmp_path):
    path = tmp_path / "s.sqlite"
    history_store(path, n_runs=3).close()
    assert set(gpubench.load(path, run="latest")["run_id"]) == {3}
    assert set(gpubench.load(path, run=[1, "latest"])["run_id"]) == {1, 3}
    assert set(gpubench.load(str(path), run=2)["run_id"]) == {2}
    with pytest.raises(UsageError, match="no run 9"):
        gpubench.load(path, run=9)
    with pytest.raises(UsageError, match="no results store"):
        gpubench.load(tmp_path / "missing.sqlite")


def test_metrics_are_flattened_and_clashing_names_prefixed(tmp_path):
    from gpubench.store import ResultStore

    rng = random.Random(0)
    with ResultStore(tmp_path / "s.sqlite") as store:
        run = store.begin_run("mixed")
        spec = CaseSpec.make("mnist", "numpy", "cpu", "float32", {"model": "mlp", "epochs": 2})
        store.add_result(run, CaseResult(spec, "ok", samples=samples(1.0, 1, rng), spec_hash="m", metrics={
            "final_accuracy": 0.93, "samples_per_s": 8000.0, "curve": [{"epoch": 1}],
            "timing": {"first_epoch_s": 2.5}, "status": "shadowed"}))
        spec = CaseSpec.make("transfer", "torch", "cpu", "float32", {"bytes": 4096, "direction": "h2d"})
        store.add_result(run, CaseResult(spec, "skipped", error="torch: no cuda device found"))
        df = gpubench.load(store)
    mnist, transfer = df.iloc[0], df.iloc[1]
    assert mnist["final_accuracy"] == 0.93 and mnist["samples_per_s"] == 8000.0
    assert mnist["timing.first_epoch_s"] == 2.5 and mnist["curve"] == [{"epoch": 1}]
    assert mnist["metric_status"] == "shadowed" and mnist["status"] == "ok"
    assert transfer["param_bytes"] == 4096 and transfer["direction"] == "h2d" and pd.isna(transfer["bytes"])
    assert transfer["status"] == "skipped" and pd.isna(transfer["median_s"])


def test_missing_pandas_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(GpubenchError, match=r"pip install 'gpubench\[pandas\]'"):
        gpubench.load(tmp_path / "s.sqlite")

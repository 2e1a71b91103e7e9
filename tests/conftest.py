"""Shared test fixtures: an isolated store and a CLI runner (in-process and as a subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gpubench.harness import HarnessSettings

REPO = Path(__file__).resolve().parents[1]
SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist"


@pytest.fixture(autouse=True, scope="session")
def _reference_cache(tmp_path_factory):
    """One reference cache for the whole test session (and the gpubench processes it starts), never results/."""
    if "GPUBENCH_REFCACHE" not in os.environ:
        os.environ["GPUBENCH_REFCACHE"] = str(tmp_path_factory.mktemp("refcache"))
    yield


#: Harness settings for tests that check answers and records, not timings: a few samples within milliseconds.
TINY = HarnessSettings(warmup_s=0.0, warmup_min_calls=1, min_samples=3, max_samples=10, budget_s=0.02)


@pytest.fixture
def weight_cache(tmp_path, monkeypatch) -> Path:
    """A fresh cache for the inference models' weights and exports (and no weights kept in memory from other tests)."""
    from gpubench.workloads.models import weights as weights_module

    monkeypatch.setenv("GPUBENCH_REFCACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(weights_module, "_MEMORY", {})
    return tmp_path / "cache"


@pytest.fixture
def store_path(tmp_path, monkeypatch) -> Path:
    """A fresh store path, also exported as GPUBENCH_STORE."""
    path = tmp_path / "store.sqlite"
    monkeypatch.setenv("GPUBENCH_STORE", str(path))
    return path


@pytest.fixture
def cli(capsys):
    """Run ``gpubench ARGS`` in-process; returns (exit status, stdout, stderr)."""
    from gpubench.cli import main

    def run(*args: str):
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def run_gpubench(*args: str, env: dict | None = None, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    """Run the real console entry point (``python -m gpubench``) as a subprocess."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "gpubench", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout, **kw)


PLUGINS = Path(__file__).resolve().parent / "plugins"


@pytest.fixture
def fake_plugin(monkeypatch):
    """Install the test plug-in backend ``fake`` (found through its entry point, like any plug-in)."""
    import importlib

    import gpubench.backends as backends

    monkeypatch.syspath_prepend(str(PLUGINS))
    old = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", str(PLUGINS) + (os.pathsep + old if old else ""))
    importlib.invalidate_caches()
    monkeypatch.setattr(backends, "REGISTRY", backends.REGISTRY.fresh())
    return PLUGINS


def install_plugin(monkeypatch, root: Path, backends: dict[str, str], files: dict[str, str],
                   dist: str = "gpubench_testplugin") -> Path:
    """Write a plug-in distribution under ``root`` and put it on the path of this process and its children.

    ``files`` maps paths relative to ``root`` to their source; ``backends`` maps entry-point names to
    ``module:Class``. The plug-in is then found through the ``gpubench.backends`` entry-point group,
    exactly as an installed third-party package would be.
    """
    import importlib

    import gpubench.backends as backends_module

    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    info = root / f"{dist}-0.1.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[gpubench.backends]\n" + "".join(f"{name} = {target}\n" for name, target in backends.items()))
    monkeypatch.syspath_prepend(str(root))
    old = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", str(root) + (os.pathsep + old if old else ""))
    importlib.invalidate_caches()
    monkeypatch.setattr(backends_module, "REGISTRY", backends_module.REGISTRY.fresh())
    return root


@pytest.fixture
def watch():
    """A :class:`process_watch.ProcessWatch` over the test: ``watch.survivors()`` lists what it started and left."""
    from process_watch import ProcessWatch

    w = ProcessWatch()
    with w:
        yield w
    w.kill_survivors()  # a failing test must not leave its processes running for the next one


# --- stores of every kind: SQLite, and PostgreSQL on a throwaway server --------------------------

@pytest.fixture(scope="session")
def postgres_cluster():
    """A PostgreSQL server of this test session (see tests/pg_cluster.py), started on first use.

    Skipped only where PostgreSQL's server binaries are not installed (``bash scripts/system-deps.sh``
    installs them; CI runs it) or psycopg is missing (the ``test`` extra installs it).
    """
    from pg_cluster import Cluster, find_bindir

    bindir = find_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: bash scripts/system-deps.sh installs them")
    pytest.importorskip("psycopg", reason="psycopg 3 is not installed: pip install -e '.[postgres]'")
    cluster = Cluster(bindir).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def postgres_url(postgres_cluster) -> str:
    """The URL of a fresh, empty PostgreSQL store (a schema of its own on the session's server)."""
    return postgres_cluster.new_store_url()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_location(request, tmp_path) -> str:
    """A location for a fresh store, once of each kind: the same store tests run on both."""
    if request.param == "sqlite":
        return str(tmp_path / "s.sqlite")
    return request.getfixturevalue("postgres_url")

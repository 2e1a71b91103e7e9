"""Shared test fixtures: an isolated store and a CLI runner (in-process and as a subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist"


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

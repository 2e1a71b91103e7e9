"""Packaging: every package listed, suites and kernels inside the wheel, ruff clean."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import REPO

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def pyproject():
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_every_package_is_listed():
    listed = set(pyproject()["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "gpubench").rglob("__init__.py")}
    assert found - listed == set(), "add these packages to [tool.setuptools] packages in pyproject.toml"


def test_builtin_backends_use_the_plugin_entry_point():
    eps = pyproject()["project"]["entry-points"]["gpubench.backends"]
    assert {"numpy", "torch", "cupy", "opencl", "tensorflow", "jax"} <= set(eps)


@pytest.mark.slow
def test_wheel_ships_suites_and_kernels(tmp_path):
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          "-w", str(tmp_path), str(REPO)], capture_output=True, text=True)
    if out.returncode != 0 and "No module named" in out.stderr:
        pytest.skip(f"cannot build a wheel here: {out.stderr.strip().splitlines()[-1]}")
    assert out.returncode == 0, out.stderr
    (wheel,) = tmp_path.glob("gpubench-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for suite in (REPO / "suites").glob("*.toml"):
        assert f"gpubench/suites/{suite.name}" in names
    for kernel in list((REPO / "kernels").rglob("*.cu")) + list((REPO / "kernels").rglob("*.cl")):
        assert "gpubench/kernels/" + kernel.relative_to(REPO / "kernels").as_posix() in names


def test_ruff_clean():
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(ruff).exists():
        pytest.skip("ruff is not installed (pip install -e '.[test]')")
    out = subprocess.run([ruff, "check", str(REPO)], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stdout[-3000:]

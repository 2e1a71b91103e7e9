"""gpubench runs from a checkout that is not installed (PYTHONPATH), as on a lent GPU machine where pip cannot
install: backends and workloads come from the checkout's pyproject.toml entry points, suites and kernels from its
top-level folders. An installed gpubench is left as it is."""

from __future__ import annotations

import subprocess
import sys

import pytest
from uninstalled import REPO, uninstalled_python

from gpubench import sourcetree


@pytest.fixture(scope="module")
def bare(tmp_path_factory):
    return uninstalled_python(tmp_path_factory.mktemp("bare"))


def gb(bare, *args, timeout=180):
    wrapper, env, checkout = bare
    return subprocess.run([str(wrapper), "-m", "gpubench", *args], capture_output=True, text=True, env=env,
                          cwd=checkout, timeout=timeout)


def test_the_bare_python_really_lacks_gpubench(bare):
    wrapper, env, checkout = bare
    proc = subprocess.run([str(wrapper), "-c", "import importlib.metadata as m, gpubench.sourcetree as s; "
                           "print(s.installed(), [e.name for e in m.entry_points(group='gpubench.backends')])"],
                          capture_output=True, text=True, env=env, cwd=checkout, timeout=60)
    assert proc.stdout.split()[0] == "False", proc.stderr
    assert "'numpy'" not in proc.stdout  # no installed entry point: the checkout has to supply them
    assert not (checkout / "gpubench.egg-info").exists() and (checkout / "suites" / "tour.toml").is_file()


def test_list_and_dry_run_work_from_the_checkout(bare):
    proc = gb(bare, "list")
    assert proc.returncode == 0, proc.stderr
    assert "numpy" in proc.stdout and "saxpy" in proc.stdout and "tour" in proc.stdout
    proc = gb(bare, "run", "--suite", "saxpy", "--quick", "--backend", "numpy", "--dry-run")
    assert proc.returncode == 0 and "saxpy numpy:cpu float32" in proc.stdout, proc.stderr


def test_kernels_and_the_pytest_plugin_from_the_checkout(bare, tmp_path):
    wrapper, env, checkout = bare
    code = ("from importlib.resources import files; "
            "print(files('gpubench.kernels').joinpath('cuda/saxpy.cu').read_text()[:40])")
    proc = subprocess.run([str(wrapper), "-c", code], capture_output=True, text=True, env=env, cwd=checkout,
                          timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip(), proc.stderr
    test = tmp_path / "test_one.py"
    test.write_text("def test_case(gpubench_case, benchmark):\n"
                    "    gpubench_case('saxpy', 'numpy', params={'n': 1024}).run(benchmark)\n")
    proc = subprocess.run([str(wrapper), "-m", "pytest", "-q", "-p", "gpubench.pytest_plugin", "-p", "no:cacheprovider",
                           str(test), "--gpubench-quick"], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_checkout_entry_points_are_pyprojects():
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]
    for group in ("gpubench.backends", "gpubench.workloads"):
        eps = sourcetree.checkout_entry_points(group)
        assert {e.name: e.value for e in eps} == declared[group]
    assert sourcetree.is_checkout() and not sourcetree.is_checkout(REPO / "docs")


def test_an_installed_gpubench_is_used_as_it_is(monkeypatch):
    from importlib import metadata

    installed = list(metadata.entry_points(group="gpubench.backends"))
    assert sourcetree.installed()  # this test environment has gpubench installed (editable)
    assert [e.value for e in sourcetree.entry_points("gpubench.backends")] == [e.value for e in installed]

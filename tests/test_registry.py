"""One plug-in registry for backends and workloads: entry points read once per process, the same rules for both.

Issue 22 item 11 (a report of imported pytest-benchmark cases rescanned every installed
distribution for each workload name no plug-in provides) and issue 21 part 3 (two registries
that had drifted apart: only one caught a plug-in that exits, only one checked the base class).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json

import pytest

import gpubench.backends as backends_module
import gpubench.workloads as workloads_module
from gpubench.errors import BrokenPlugin, UsageError


@pytest.fixture
def scans(monkeypatch):
    """Fresh registries (nothing read yet) and a count of the scans of installed distributions."""
    monkeypatch.setattr(backends_module, "REGISTRY", backends_module.REGISTRY.fresh())
    monkeypatch.setattr(workloads_module, "REGISTRY", workloads_module.REGISTRY.fresh())
    count = {"n": 0}
    real = importlib.metadata.distributions

    def counting(**kw):
        count["n"] += 1
        return real(**kw)

    monkeypatch.setattr(importlib.metadata, "distributions", counting)
    return count


def _plain_benchmarks(n: int) -> dict:
    """A pytest-benchmark file of ``n`` plain benchmarks (no gpubench plug-in involved)."""
    return {"machine_info": {"node": "h", "cpu": {"brand_raw": "Test CPU"}}, "commit_info": {},
            "datetime": "2024-01-01T00:00:00", "version": "4.0.0",
            "benchmarks": [{"name": f"test_{i}", "fullname": f"t.py::test_{i}", "options": {"timer": "perf_counter"},
                            "stats": {"data": [1e-3 + i * 1e-6, 1.1e-3, 1.2e-3], "iterations": 1}}
                           for i in range(n)]}


def test_reading_imported_cases_reads_the_entry_points_once(scans, cli, store_path, tmp_path):
    path = tmp_path / "b.json"
    path.write_text(json.dumps(_plain_benchmarks(150)))
    code, _, err = cli("import", str(path))
    assert code == 0, err
    for args in (["show"], ["export", "--format", "csv"], ["report", "-o", str(tmp_path / "r.html")]):
        code, _, err = cli(*args)
        assert code == 0, (args, err)
    # One scan per group (backends for the import's --baseline check, workloads for the readers),
    # not one (or two) per case and per lookup.
    assert scans["n"] <= 2


def test_an_unknown_name_is_remembered(scans):
    from gpubench.workloads import find_workload, get_workload, is_workload

    for _ in range(50):
        assert find_workload("t.py::test_nothing") is None
        assert not is_workload("t.py::test_nothing")
    with pytest.raises(UsageError, match=r"unknown workload 't.py::test_nothing' \(known: .*matmul"):
        get_workload("t.py::test_nothing")
    assert get_workload("matmul") is get_workload("matmul")
    assert scans["n"] == 1


PLUGIN_FILES = {
    "gpubench_regtest/__init__.py": "",
    "gpubench_regtest/exits.py": "raise SystemExit(4)\n",
    "gpubench_regtest/imports.py": "import gpubench_no_such_dependency  # noqa\n",
    "gpubench_regtest/counted.py": (
        "import builtins\n"
        "builtins.gpubench_regtest_imports = getattr(builtins, 'gpubench_regtest_imports', 0) + 1\n"
        "raise RuntimeError('counted import')\n"),
    "gpubench_regtest/notone.py": "class NotOne:\n    name = 'notone'\n",
}


def install(monkeypatch, root, group: str, entries: dict[str, str]):
    """A distribution under ``root`` registering ``entries`` in ``group``, on this process's path."""
    for rel, text in PLUGIN_FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    info = root / "gpubench_regtest-0.1.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: gpubench_regtest\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in entries.items()))
    monkeypatch.syspath_prepend(str(root))
    importlib.invalidate_caches()


@pytest.mark.parametrize(("module", "getter", "kind"), [
    (backends_module, "get_backend", "backend"),
    (workloads_module, "get_workload", "workload"),
])
def test_both_registries_name_a_broken_plugin_the_same_way(monkeypatch, tmp_path, module, getter, kind):
    import builtins

    install(monkeypatch, tmp_path, module.GROUP, {
        "exits": "gpubench_regtest.exits:Nothing", "imports": "gpubench_regtest.imports:Nothing",
        "counted": "gpubench_regtest.counted:Nothing", "notone": "gpubench_regtest.notone:NotOne"})
    monkeypatch.setattr(module, "REGISTRY", module.REGISTRY.fresh())
    monkeypatch.setattr(builtins, "gpubench_regtest_imports", 0, raising=False)
    get = getattr(module, getter)
    for name, words in (("exits", "SystemExit: 4"),
                        ("imports", "ModuleNotFoundError: No module named 'gpubench_no_such_dependency'"),
                        ("notone", "TypeError: gpubench_regtest.notone:NotOne is not a gpubench"),
                        ("counted", "RuntimeError: counted import")):
        for _ in range(3):
            with pytest.raises(BrokenPlugin, match=f"^{kind} '{name}' is broken: {words}"):
                get(name)
    # A broken plug-in is tried once: its failure is remembered, not re-imported on every question.
    assert builtins.gpubench_regtest_imports == 1
    assert module.REGISTRY.find("exits") is None
    names = module.backend_names() if kind == "backend" else module.workload_names()
    assert {"exits", "imports", "notone", "counted"} <= set(names)

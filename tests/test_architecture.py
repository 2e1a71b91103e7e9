"""The package's shape: data flows one way (docs/measurement.md §1). No import circle, no upward import.

Every ``import`` and ``from ... import`` of a ``gpubench`` module counts, at module level or inside
a function (a lazy import is still a dependency). Each module belongs to one layer; a module may
import its own layer and the layers below it, never one above.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "gpubench"

#: Layers, lowest first: (name, module prefixes). The longest matching prefix decides.
LAYERS = (
    ("contract", ("gpubench.errors", "gpubench.stats", "gpubench.records", "gpubench.sourcetree",
                  "gpubench.registry", "gpubench.textout", "gpubench.atomicfile", "gpubench.shapes")),
    ("measurement", ("gpubench.harness", "gpubench.ops", "gpubench.envinfo", "gpubench.mnist_data", "gpubench.data",
                     "gpubench.profile", "gpubench.datasheet", "gpubench.lifeline", "gpubench.machine",
                     "gpubench.cacheflush", "gpubench.plausibility", "gpubench.timing", "gpubench.latency",
                     "gpubench.memfit")),
    ("storage", ("gpubench.store", "gpubench.refcache")),
    ("workloads", ("gpubench.workloads",)),
    ("backends", ("gpubench.backends",)),
    ("cases", ("gpubench.case", "gpubench.spec", "gpubench.worker", "gpubench.workerproc", "gpubench.probe",
               "gpubench.estimate")),
    ("running", ("gpubench.runner", "gpubench.calibrate", "gpubench.importer", "gpubench.recorder")),
    ("reading", ("gpubench.rows", "gpubench.export", "gpubench.compare", "gpubench.tables", "gpubench.progress",
                 "gpubench.report", "gpubench.history", "gpubench.frame")),
    ("front", ("gpubench.commands", "gpubench.cli", "gpubench.__main__", "gpubench.pytest_plugin",
               "gpubench.collective", "gpubench.runsuite", "gpubench.api")),
)

#: The package itself (``gpubench/__init__.py``) is the public façade: it may reach any layer lazily,
#: and nothing inside the package imports it for more than ``__version__``.
FACADE = "gpubench"


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def layer_of(module: str) -> int:
    best, rank = -1, None
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best:
                best, rank = len(p), i
    if rank is None:
        raise AssertionError(f"module {module} is in no layer: add it to LAYERS in {__file__}")
    return rank


def imports_of(path: Path, module: str) -> set[str]:
    """The gpubench modules ``path`` imports (resolving relative imports and ``from pkg import sub``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    known = {module_name(p) for p in PACKAGE.rglob("*.py")}
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "gpubench")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            if base.split(".")[0] != "gpubench":
                continue
            for a in node.names:
                sub = f"{base}.{a.name}"
                out.add(sub if sub in known else base)
    return {m for m in out if m in known and m != module}


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p, module_name(p)) for p in PACKAGE.rglob("*.py")}


def test_every_module_has_a_layer():
    for module in graph():
        if module != FACADE:
            layer_of(module)


def test_no_upward_import():
    bad = []
    for module, deps in graph().items():
        if module == FACADE:
            continue
        for dep in deps:
            if dep == FACADE:
                continue
            if layer_of(dep) > layer_of(module):
                bad.append(f"{module} ({LAYERS[layer_of(module)][0]}) imports {dep} ({LAYERS[layer_of(dep)][0]})")
    assert not bad, "upward imports:\n" + "\n".join(sorted(bad))


def test_no_import_circle():
    g = {m: {d for d in deps if d != FACADE} for m, deps in graph().items() if m != FACADE}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(g):
        if v not in index:
            visit(v)
    assert not cycles, "import circles: " + "; ".join(" ↔ ".join(c) for c in cycles)


def test_the_checker_sees_lazy_and_relative_imports(tmp_path):
    """The checker itself: a lazy import inside a function and a relative import both count."""
    pkg = PACKAGE
    sample = pkg / "workloads" / "mnist.py"
    assert "gpubench.workloads.training" in imports_of(sample, "gpubench.workloads.mnist")
    report = pkg / "report" / "build.py"
    assert "gpubench.report.charts" in imports_of(report, "gpubench.report.build")

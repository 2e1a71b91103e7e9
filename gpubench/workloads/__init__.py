"""Workload discovery through the ``gpubench.workloads`` entry-point group.

The built-in workloads are registered in gpubench's own ``pyproject.toml`` under the same group a
third-party package uses, so a new workload is a module with a :class:`~gpubench.workloads.base.Workload`
subclass plus one entry-point line, exactly as a new backend is. Loading an entry point imports
only the workload's module (NumPy at most), never a framework.
"""

from __future__ import annotations

from gpubench.errors import GpubenchError, UsageError
from gpubench.sourcetree import entry_points

GROUP = "gpubench.workloads"

_cache: dict = {}


def workload_names() -> list[str]:
    """Names of every registered workload, built-in and plug-in, as the entry points list them, deduplicated."""
    names = list(dict.fromkeys(ep.name for ep in entry_points(group=GROUP)))
    if not names:
        raise GpubenchError("no workloads registered: is gpubench installed? (pip install -e .)")
    return names


def is_workload(name: str) -> bool:
    """Whether a workload called ``name`` is registered (without loading it)."""
    return any(ep.name == name for ep in entry_points(group=GROUP))


def get_workload(name: str):
    """Return the workload instance called ``name``; :class:`UsageError` when unknown.

    A registered workload whose module fails to import or whose constructor raises is a
    :class:`GpubenchError` naming it, never a traceback.
    """
    if name in _cache:
        return _cache[name]
    eps = [ep for ep in entry_points(group=GROUP) if ep.name == name]
    if not eps:
        raise UsageError(f"unknown workload {name!r} (known: {', '.join(sorted(workload_names()))})")
    try:
        workload = eps[0].load()()
    except Exception as exc:  # a broken plug-in must not take the CLI down
        raise GpubenchError(f"workload {name!r} failed to load: {type(exc).__name__}: {exc}") from exc
    if not workload.name:
        workload.name = name
    _cache[name] = workload
    return workload


def find_workload(name: str):
    """The workload called ``name``, or None when it is not registered here or fails to load.

    For readers of stored results (export, report, compare): a record may name a workload of a
    plug-in this machine lacks, and it must still show.
    """
    try:
        return get_workload(name)
    except GpubenchError:
        return None


def size_text(name: str, params: dict) -> str:
    """A case's problem and modes as one short text (``4096³ tf32``, ``32×64×56×56 k64 3×3 pad1 layout=NHWC``).

    The workload's own :meth:`~gpubench.workloads.base.Workload.describe` plus its
    :meth:`~gpubench.workloads.base.Workload.mode_tags`; ``k=v`` pairs for a workload this machine
    lacks. Tables, the report and ``compare`` all label sizes with it.
    """
    workload = find_workload(name)
    if workload is not None:
        try:
            return " ".join([workload.describe(params), *workload.mode_tags(params)]).strip()
        except Exception:  # noqa: BLE001 - an odd stored parameter set still gets a label
            pass
    return " ".join(f"{k}={v}" for k, v in params.items())

"""Running gpubench from a source checkout that is not installed (``PYTHONPATH=. python -m gpubench``).

An installed gpubench (a wheel, or ``pip install -e .``) has two things a bare checkout lacks:

* the packages ``gpubench.suites`` and ``gpubench.kernels``, which ``pyproject.toml`` maps onto the
  top-level folders ``suites/`` and ``kernels/``;
* its distribution metadata, whose entry points register the built-in backends and workloads
  (and the pytest plug-in).

Where pip cannot install (no setuptools, a read-only ``site-packages``: a lent GPU machine, say),
this module supplies both from the checkout itself: :func:`install_resource_finder` maps the two
packages onto their folders, and :func:`entry_points` adds the entry points that the checkout's
``pyproject.toml`` declares when no ``gpubench`` distribution is installed. The checkout's own
``pyproject.toml`` is the one list of built-ins, so the two ways cannot drift apart. An installed
gpubench is used as it is; nothing here changes it.

The pytest plug-in is found through the ``pytest11`` entry point only when gpubench is installed;
from a checkout, load it with ``pytest -p gpubench.pytest_plugin``.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from typing import Any

#: The checkout's root (the folder holding ``gpubench/``, ``suites/``, ``kernels/`` and ``pyproject.toml``).
ROOT = Path(__file__).resolve().parent.parent

#: Packages of the wheel that live outside ``gpubench/`` in a checkout: package name → folder.
MAPPED = {"gpubench.suites": "suites", "gpubench.kernels": "kernels"}


def is_checkout(root: Path = ROOT) -> bool:
    """Whether ``root`` is a gpubench source checkout (its pyproject.toml and the mapped folders are there)."""
    return (root / "pyproject.toml").is_file() and all((root / d / "__init__.py").is_file() for d in MAPPED.values())


class _MappedFolders(importlib.abc.MetaPathFinder):
    """Finds ``gpubench.suites`` and ``gpubench.kernels`` in the checkout's top-level folders.

    Consulted last (it is appended to ``sys.meta_path``), so an installed gpubench, editable or not,
    answers first and this finder never changes what an install resolves.
    """

    def __init__(self, root: Path):
        self.root = root

    def find_spec(self, fullname: str, path: Any = None, target: Any = None):  # noqa: D102 - the finder protocol
        folder = MAPPED.get(fullname)
        if folder is None:
            return None
        init = self.root / folder / "__init__.py"
        if not init.is_file():
            return None
        return importlib.util.spec_from_file_location(fullname, init, submodule_search_locations=[str(init.parent)])


def install_resource_finder(root: Path = ROOT) -> bool:
    """Make ``gpubench.suites`` and ``gpubench.kernels`` importable from a checkout; True when the finder is in place.

    Idempotent; does nothing outside a checkout (an installed wheel has the packages itself).
    """
    if not is_checkout(root):
        return False
    if not any(isinstance(f, _MappedFolders) for f in sys.meta_path):
        sys.meta_path.append(_MappedFolders(root))
    return True


@functools.lru_cache(maxsize=1)
def installed() -> bool:
    """Whether a ``gpubench`` distribution is installed (its metadata, and so its entry points, can be read)."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        distribution("gpubench")
    except PackageNotFoundError:
        return False
    return True


@functools.cache
def checkout_entry_points(group: str, root: Path = ROOT) -> tuple[Any, ...]:
    """The entry points of ``group`` that the checkout's ``pyproject.toml`` declares (empty outside a checkout)."""
    from importlib.metadata import EntryPoint

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    try:
        data = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ()
    table = data.get("project", {}).get("entry-points", {}).get(group, {})
    return tuple(EntryPoint(name=str(name), value=str(value), group=group) for name, value in table.items())


def entry_points(group: str) -> list[Any]:
    """Every entry point of ``group``: the installed distributions', plus, when gpubench itself is not installed,
    the built-ins its checkout declares (an installed plug-in of the same name wins)."""
    from importlib.metadata import entry_points as installed_entry_points

    found = list(installed_entry_points(group=group))
    if installed():
        return found
    names = {ep.name for ep in found}
    return found + [ep for ep in checkout_entry_points(group) if ep.name not in names]

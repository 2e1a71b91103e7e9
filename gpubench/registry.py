"""One registry of entry-point plug-ins, serving backends (``gpubench.backends``) and workloads
(``gpubench.workloads``) alike.

Built-in backends and workloads are registered in gpubench's own ``pyproject.toml`` under the same
groups a third-party package uses, so both are found the same way. A registry reads its group's
entry points once per process, the first time it is asked (listing names loads no plug-in), and
keeps every answer: the instance of a plug-in that loaded, the error of one that did not, and the
absence of a name no plug-in provides. A reader of a large store that asks for the same unknown
workload name once per case (imported pytest-benchmark node ids) therefore pays one dictionary
lookup per question, not a scan of every installed distribution.

A plug-in whose module fails to import, whose constructor raises (or exits), or whose object is
not of the registry's base class is a :class:`~gpubench.errors.BrokenPlugin` error naming it,
never a crash of the caller.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import EntryPoint
from typing import Generic, TypeVar

from gpubench.errors import BrokenPlugin, GpubenchError, UsageError

T = TypeVar("T")


class Registry(Generic[T]):
    """The plug-ins of one entry-point ``group``, each an instance of the class at ``base``.

    ``kind`` names a plug-in in messages (``backend``, ``workload``); ``base`` returns the base
    class, called only when a plug-in is first loaded (so the registry imports no layer above it);
    ``broken`` builds the error for a plug-in that cannot be loaded.
    """

    def __init__(self, group: str, kind: str, base: Callable[[], type],
                 broken: Callable[[str, BaseException], GpubenchError] | None = None):
        self.group = group
        self.kind = kind
        self.base = base
        self._broken = broken or (lambda name, exc: BrokenPlugin(kind, name, exc))
        self._entries: dict[str, EntryPoint] | None = None
        self._loaded: dict[str, T | GpubenchError] = {}

    def fresh(self) -> Registry[T]:
        """A new registry of the same group that reads the entry points again (for tests that install one)."""
        return Registry(self.group, self.kind, self.base, self._broken)

    def entries(self) -> dict[str, EntryPoint]:
        """The group's entry points by name, in the order installed distributions list them (read once).

        Where two distributions register one name, the first listed wins, as :func:`importlib.metadata`
        lists them.
        """
        if self._entries is None:
            found: dict[str, EntryPoint] = {}
            from gpubench.sourcetree import entry_points  # the installed ones, or a bare checkout's built-ins

            for ep in entry_points(group=self.group):
                found.setdefault(ep.name, ep)
            self._entries = found
        return self._entries

    def names(self) -> list[str]:
        """Every registered name; a :class:`GpubenchError` when there is none (gpubench is not installed)."""
        names = list(self.entries())
        if not names:
            raise GpubenchError(f"no {self.kind}s registered: is gpubench installed? (pip install -e .)")
        return names

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.entries()

    def get(self, name: str) -> T:
        """The instance registered as ``name`` (constructed once).

        :class:`UsageError` for a name nothing registers; the registry's broken-plug-in error
        (:class:`BrokenPlugin`) when its module cannot be imported, its constructor raises or exits,
        or it is not an instance of the base class. Both answers are kept: asking again costs nothing.
        """
        found = self._loaded.get(name)
        if found is None:
            found = self._load(name)
            self._loaded[name] = found
        if isinstance(found, GpubenchError):
            raise found.with_traceback(None)  # the kept error, without the tracebacks of earlier raises
        return found

    def find(self, name: str) -> T | None:
        """The instance registered as ``name``, or None when nothing registers it or it fails to load.

        For readers of stored results: a record may name a plug-in this machine lacks, and it must still show.
        """
        try:
            return self.get(name)
        except GpubenchError:
            return None

    def _load(self, name: str) -> T | GpubenchError:
        ep = self.entries().get(name)
        if ep is None:
            known = ", ".join(sorted(self.entries())) or "none"
            return UsageError(f"unknown {self.kind} {name!r} (known: {known})")
        base = self.base()
        try:  # a broken plug-in must not take the caller down
            obj = ep.load()()
            if not isinstance(obj, base):
                raise TypeError(f"{ep.value} is not a {base.__module__}.{base.__qualname__}")
            if not getattr(obj, "name", ""):
                obj.name = name
        except (Exception, SystemExit) as exc:
            error = self._broken(name, exc)
            error.__cause__ = exc
            return error
        return obj

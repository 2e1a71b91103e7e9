"""Errors with a one-line message for the user, and the missing-dependency helper."""

from __future__ import annotations


class GpubenchError(Exception):
    """An error the CLI reports as one line and exit status ``exit_code``."""

    exit_code = 1


class UsageError(GpubenchError):
    """Bad input (unknown suite, backend, device or dtype; malformed file; bad sizes): exit 2."""

    exit_code = 2


class BrokenPlugin(GpubenchError):
    """A registered plug-in (backend or workload) that cannot even be loaded or constructed."""

    def __init__(self, kind: str, name: str, exc: BaseException):
        detail = (str(exc).strip().splitlines() or [""])[0][:300]
        super().__init__(f"{kind} {name!r} is broken: {type(exc).__name__}" + (f": {detail}" if detail else ""))
        self.kind = kind
        self.name = name


class BrokenBackend(BrokenPlugin):
    """A registered backend plug-in that cannot even be loaded or constructed (its module or class is broken)."""

    def __init__(self, name: str, exc: BaseException):
        super().__init__("backend", name, exc)


class StoreError(GpubenchError):
    """The results store cannot be read or written. ``short`` names the problem in a few words."""

    short = "store error"


class StoreReadOnly(StoreError, UsageError):
    """A write to a store that cannot be written (read-only file, directory or mount): exit 2."""

    short = "store is read-only"


class DiskFull(StoreError):
    """The store's disk is full, or a file size limit was reached."""

    short = "disk full"


class StoreDamaged(StoreError):
    """A store whose file is damaged (SQLite's check finds broken pages): never written into."""

    short = "store damaged"


class RunFailed(GpubenchError):
    """A run that stopped on an error of its own (not of a case): it is stored as ``failed`` with the reason."""


class Unavailable(GpubenchError):
    """A backend, device or dtype that cannot run here; the case is *skipped* with this reason."""


class CaseTimeout(GpubenchError):
    """A case that ran past a time limit of its own (a hung rank of a collective): recorded as ``timeout``.

    Whoever raises it has already stopped what it started (killed the ranks)."""


class MissingDependency(Unavailable):
    """A framework that is not installed, naming the extra that installs it (the nvbench habit)."""

    def __init__(self, backend: str, module: str, extra: str):
        what = "not installed" if module == backend else f"{module} not installed"
        super().__init__(f"{backend}: {what} — pip install 'gpubench[{extra}]'")
        self.backend = backend
        self.module = module
        self.extra = extra


def require(backend: str, module: str, extra: str):
    """Import and return ``module``, or raise :class:`MissingDependency` naming ``extra``."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if exc.name is not None and exc.name.split(".")[0] != module.split(".")[0]:
            # The framework is there but one of its own dependencies is broken: say so.
            raise Unavailable(f"{backend}: importing {module} failed: {exc}") from exc
        raise MissingDependency(backend, module, extra) from exc

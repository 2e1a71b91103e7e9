"""Store locations: which kind of store a location names, and how to print one without its password.

A location is a file path or a URL. The URL's scheme picks the store kind from :data:`STORE_KINDS`
(the approach of pytest-benchmark's ``load_storage``): a path or ``sqlite:///PATH`` is a SQLite
file, ``postgresql://…`` (or ``postgres://…``) a PostgreSQL database. Adding a kind of store is one
module with a :class:`~gpubench.store.base.ResultStore` subclass plus one line here.

Nothing here imports a database driver: the kind's module is imported when a store of that kind
is opened.
"""

from __future__ import annotations

import importlib
import os
import re
from pathlib import Path

from gpubench.errors import UsageError

#: URL scheme → ``module:class`` of the store that serves it. A location without a scheme is a path.
STORE_KINDS = {
    "sqlite": "gpubench.store.sqlite:SQLiteStore",
    "postgresql": "gpubench.store.postgres:PostgresStore",
    "postgres": "gpubench.store.postgres:PostgresStore",
}

#: Store used when none is given (and ``$GPUBENCH_STORE`` is not set).
DEFAULT_STORE = Path("results") / "gpubench.sqlite"

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# user:password@ in a URL's authority, and password=... as a URL query or libpq keyword parameter.
_URL_PASSWORD = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://[^\s/@:?#]*):[^\s/@?#]*@")
_KEYWORD_PASSWORD = re.compile(r"(?i)\b(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&#']+)")
REDACTED = "***"


def default_location() -> str:
    """``$GPUBENCH_STORE`` or ``results/gpubench.sqlite``."""
    return os.environ.get("GPUBENCH_STORE") or str(DEFAULT_STORE)


def scheme_of(location: str | os.PathLike[str]) -> str:
    """The URL scheme of a location, lower case; ``sqlite`` for a plain path."""
    match = _SCHEME.match(str(location))
    return match.group(1).lower() if match else "sqlite"


def store_class(location: str | os.PathLike[str] | None) -> type:
    """The store class that serves ``location`` (``None``: :func:`default_location`)."""
    location = default_location() if location is None else location
    scheme = scheme_of(location)
    target = STORE_KINDS.get(scheme)
    if target is None:
        raise UsageError(f"unknown kind of store {scheme + '://'!r} in {redact(str(location))} "
                         f"(known: a path, {', '.join(k + '://…' for k in STORE_KINDS)})")
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def sqlite_path(location: str | os.PathLike[str]) -> Path:
    """The file a SQLite location names: a path, or ``sqlite:///PATH`` as SQLAlchemy writes it
    (``sqlite:///results/s.sqlite`` is relative, ``sqlite:////srv/s.sqlite`` absolute)."""
    text = os.fspath(location)
    if _SCHEME.match(text):
        if not text.lower().startswith("sqlite:///"):
            raise UsageError(f"a SQLite store URL is sqlite:///PATH, got {redact(text)!r}")
        text = text[len("sqlite:///"):]
    if text == "":
        raise UsageError("the store path must not be empty")
    return Path(text)


def redact(text: str) -> str:
    """``text`` with every password in it replaced by ``***``: the ``user:password@`` of a URL and
    ``password=…`` as a URL query or libpq keyword parameter. Use it on anything printed or stored
    that may hold a store location (a command line, an error message)."""
    text = _URL_PASSWORD.sub(rf"\1:{REDACTED}@", text)
    return _KEYWORD_PASSWORD.sub(rf"\g<1>{REDACTED}", text)

"""Backend discovery through the ``gpubench.backends`` entry-point group.

Built-in backends are registered in gpubench's own ``pyproject.toml`` under the same group a
third-party plug-in uses, so both are found the same way. Loading an entry point imports only
the adapter module, never its framework.

Listing names (:func:`backend_names`) loads no plug-in; :func:`get_backend` loads and constructs
only the backend asked for, and a plug-in whose module or constructor fails is a
:class:`~gpubench.errors.BrokenBackend` error naming it, never a crash of the caller.
"""

from __future__ import annotations

from gpubench.errors import BrokenBackend, GpubenchError, UsageError
from gpubench.sourcetree import entry_points

GROUP = "gpubench.backends"

_cache: dict[str, object] = {}


def backend_names() -> list[str]:
    """Names of every registered backend, built-in and plug-in."""
    names = sorted({ep.name for ep in entry_points(group=GROUP)})
    if not names:
        raise GpubenchError("no backends registered: is gpubench installed? (pip install -e .)")
    return names


def get_backend(name: str):
    """Return an instance of the backend registered as ``name``.

    Raises :class:`UsageError` for an unknown name and :class:`BrokenBackend` when the plug-in's
    module cannot be imported, its constructor raises, or it is not a gpubench ``Backend``.
    """
    if name in _cache:
        return _cache[name]
    eps = [ep for ep in entry_points(group=GROUP) if ep.name == name]
    if not eps:
        raise UsageError(f"unknown backend {name!r} (known: {', '.join(backend_names())})")
    from gpubench.backends.base import Backend

    try:  # a broken plug-in must not take the CLI down
        backend = eps[0].load()()
        if not isinstance(backend, Backend):
            raise TypeError(f"{eps[0].value} is not a gpubench.backends.base.Backend")
        if not backend.name:
            backend.name = name
    except (Exception, SystemExit) as exc:
        raise BrokenBackend(name, exc) from exc
    _cache[name] = backend
    return backend

"""Backend discovery through the ``gpubench.backends`` entry-point group.

Built-in backends are registered in gpubench's own ``pyproject.toml`` under the same group a
third-party plug-in uses, so both are found the same way. Loading an entry point imports only
the adapter module, never its framework.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from gpubench.errors import GpubenchError, UsageError

GROUP = "gpubench.backends"

_cache: dict[str, object] = {}


def backend_names() -> list[str]:
    """Names of every registered backend, built-in and plug-in."""
    names = sorted({ep.name for ep in entry_points(group=GROUP)})
    if not names:
        raise GpubenchError("no backends registered: is gpubench installed? (pip install -e .)")
    return names


def get_backend(name: str):
    """Return an instance of the backend registered as ``name`` or raise :class:`UsageError`."""
    if name in _cache:
        return _cache[name]
    eps = [ep for ep in entry_points(group=GROUP) if ep.name == name]
    if not eps:
        raise UsageError(f"unknown backend {name!r} (known: {', '.join(backend_names())})")
    try:
        cls = eps[0].load()
    except Exception as exc:  # a broken plug-in must not take the CLI down
        raise GpubenchError(f"backend {name!r} failed to load: {exc}") from exc
    backend = cls()
    if not backend.name:
        backend.name = name
    _cache[name] = backend
    return backend

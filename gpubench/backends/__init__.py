"""Backend discovery through the ``gpubench.backends`` entry-point group.

Built-in backends are registered in gpubench's own ``pyproject.toml`` under the same group a
third-party plug-in uses, so both are found the same way (one :class:`~gpubench.registry.Registry`
serves backends and workloads; it reads the entry points once per process). Loading an entry
point imports only the adapter module, never its framework.

Listing names (:func:`backend_names`) loads no plug-in; :func:`get_backend` loads and constructs
only the backend asked for, and a plug-in whose module or constructor fails is a
:class:`~gpubench.errors.BrokenBackend` error naming it, never a crash of the caller.
"""

from __future__ import annotations

from gpubench.errors import BrokenBackend
from gpubench.registry import Registry

GROUP = "gpubench.backends"


def _base() -> type:
    from gpubench.backends.base import Backend

    return Backend


#: The registered backends (replaced by a fresh one in tests that install a plug-in).
REGISTRY: Registry = Registry(GROUP, "backend", _base, BrokenBackend)


def backend_names() -> list[str]:
    """Names of every registered backend, built-in and plug-in, sorted."""
    return sorted(REGISTRY.names())


def get_backend(name: str):
    """Return the instance of the backend registered as ``name`` (constructed once per process).

    Raises :class:`UsageError` for an unknown name and :class:`BrokenBackend` when the plug-in's
    module cannot be imported, its constructor raises, or it is not a gpubench ``Backend``.
    """
    return REGISTRY.get(name)

"""Workload registry: name → workload class, imported lazily so the CLI stays fast."""

from __future__ import annotations

import importlib

from gpubench.errors import UsageError

#: Built-in workloads: name → "module:Class".
WORKLOADS = {
    "matmul": "gpubench.workloads.matmul:MatmulWorkload",
    "saxpy": "gpubench.workloads.saxpy:SaxpyWorkload",
    "conv2d": "gpubench.workloads.conv2d:Conv2dWorkload",
    "transfer": "gpubench.workloads.transfer:TransferWorkload",
    "mnist": "gpubench.workloads.mnist:MnistWorkload",
}

_cache: dict = {}


def get_workload(name: str):
    """Return the workload instance called ``name`` or raise :class:`UsageError`."""
    if name not in WORKLOADS:
        raise UsageError(f"unknown workload {name!r} (known: {', '.join(sorted(WORKLOADS))})")
    if name not in _cache:
        module, cls = WORKLOADS[name].split(":")
        _cache[name] = getattr(importlib.import_module(module), cls)()
    return _cache[name]

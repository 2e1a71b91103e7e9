"""The shapes readers rely on in data that may come from elsewhere: a run's environment, a record's metrics.

gpubench writes these itself, but ``gpubench import`` stores what a pytest-benchmark file says
(``machine_info["gpubench"]``, a record in ``extra_info["gpubench"]``), and older or foreign stores
hold whatever they hold. Each shape is declared once here and used both ways:

* :func:`problems` lists what does not fit, by path (``machine_info.gpubench.cpu: must be an object,
  got str``): the importer refuses such a file, naming the first;
* :func:`conform` returns a copy without what does not fit: readers of stores (``show``, ``export``,
  ``report``, ``history``...) see only the shapes they expect, so a record that was accepted,
  whenever and however, never takes a reader down.

A shape is a type or tuple of types (``str``, :data:`NUMBER`...), ``[shape]`` for a list of that shape,
a ``dict`` of known keys (others are kept as they are), or :class:`MapOf` for a mapping of any keys
to one shape. ``None`` fits every shape as the value of a key (a fact that was not known), never as an
item of a list, nor where a shape is :class:`Given`. Numbers must be finite.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


class Number:
    """Shape of a finite int or float (not a bool)."""


#: A finite number (int or float, never bool).
NUMBER = Number
#: An integer (never bool).
INTEGER = int
#: Any JSON scalar.
SCALAR = (str, int, float, bool)


@dataclass(frozen=True)
class Given:
    """Shape of a value that must be there: ``shape``, and never null."""

    shape: Any


@dataclass(frozen=True)
class MapOf:
    """Shape of an object whose every value has shape ``value`` (keys are free)."""

    value: Any


_DEVICE = {"id": str, "name": str, "kind": str, "hardware": str, "details": dict}
_GIT = {"commit": str, "short": str, "branch": str, "dirty": bool, "version": str}

#: What readers expect of a run's environment (:func:`gpubench.envinfo.capture_host` plus backend facts,
#: and what ``gpubench import`` adds).
ENVIRONMENT: dict[str, Any] = {
    "hostname": str, "os": str, "platform": str, "python": str, "python_impl": str, "source": str,
    "memory_bytes": NUMBER,
    "cpu": {"model": str, "logical_cores": INTEGER, "physical_cores": INTEGER, "affinity": INTEGER, "isa": [str],
            "freq_mhz": NUMBER, "freq_max_mhz": NUMBER, "freq_source": str, "governor": str,
            "governor_reason": str, "load_average": [NUMBER]},
    "libraries": MapOf(SCALAR),
    "blas": [{"internal_api": str, "version": str, "num_threads": INTEGER, "architecture": str}],
    "gpus": [{"name": str, "memory": str, "driver": str}],
    "load_avg": [NUMBER],
    "git": {"project": _GIT, "gpubench": _GIT},
    "gpu_state": dict,
    "env_vars": MapOf(SCALAR),
    "backends": MapOf({"available": bool, "reason": str, "devices": [_DEVICE]}),
    "commit": {"id": str, "branch": str, "dirty": bool},
    "pytest_benchmark": dict,
}

_CEILING = {"name": str, "value": Given(NUMBER), "unit": str, "source": str, "rate": NUMBER}

#: What readers expect of the metrics they read from a record (other metrics are free-form).
METRICS: dict[str, Any] = {
    "physical_ceiling": _CEILING, "implausible": _CEILING, "above_ceiling": _CEILING,
    "llc_bytes": NUMBER, "peak_memory_bytes": NUMBER,
    "final_accuracy": NUMBER, "time_to_target_s": NUMBER, "samples_per_s": NUMBER,
}


#: What readers expect of a record's ``machine`` (:class:`gpubench.machine.CaseWatch`; other keys are free-form).
MACHINE: dict[str, Any] = {
    "cpu": {"other_cores": NUMBER, "other_cores_peak": NUMBER, "cores": NUMBER, "case_other_cores": NUMBER},
    "gpu": {"throttle": [str]},
}


def json_type(value: Any) -> str:
    """The JSON name of ``value``'s type (``object``, ``array``, ``string``, ``number``...)."""
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer",
            float: "number", type(None): "null"}.get(type(value), type(value).__name__)


def _fits_type(value: Any, shape: Any) -> bool:
    types = shape if isinstance(shape, tuple) else (shape,)
    for t in types:
        if t is Number:
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                return True
        elif t is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return True
        elif t is float:
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                return True
        elif isinstance(value, t):
            return True
    return False


def _expected(shape: Any) -> str:
    if isinstance(shape, list):
        return "an array"
    if isinstance(shape, (dict, MapOf)) or shape is dict:
        return "an object"
    types = shape if isinstance(shape, tuple) else (shape,)
    names = {Number: "a finite number", int: "an integer", float: "a finite number", str: "a string",
             bool: "true or false"}
    return " or ".join(names.get(t, t.__name__) for t in types)


_DROP = object()


def _walk(value: Any, shape: Any, path: str, out: list[str], item: bool = False) -> Any:
    """A copy of ``value`` without what does not fit ``shape`` (:data:`_DROP` when nothing of it does), noting
    each problem in ``out``. ``None`` fits as the value of a key (a fact not known), never as an item of a
    list (readers join and format the items)."""
    if isinstance(shape, Given):
        return _bad(value, shape.shape, path, out) if value is None else _walk(value, shape.shape, path, out, item)
    if value is None:
        return _bad(value, shape, path, out) if item else None
    if isinstance(shape, list):
        if not isinstance(value, list):
            return _bad(value, shape, path, out)
        kept = (_walk(entry, shape[0], f"{path}[{i}]", out, item=True) for i, entry in enumerate(value))
        return [entry for entry in kept if entry is not _DROP]
    if isinstance(shape, (dict, MapOf)):
        if not isinstance(value, dict):
            return _bad(value, shape, path, out)
        result = {}
        for key, entry in value.items():
            sub = shape.value if isinstance(shape, MapOf) else shape.get(key)
            clean = entry if sub is None else _walk(entry, sub, f"{path}.{key}", out)
            if clean is not _DROP:
                result[key] = clean
        return result
    return value if _fits_type(value, shape) else _bad(value, shape, path, out)


def _bad(value: Any, shape: Any, path: str, out: list[str]) -> Any:
    got = repr(value) if isinstance(value, float) else json_type(value)
    out.append(f"{path}: must be {_expected(shape)}, got {got}")
    return _DROP


def problems(value: Any, shape: Any, path: str) -> list[str]:
    """What in ``value`` does not fit ``shape``, one line per problem, each starting with its path."""
    out: list[str] = []
    _walk(value, shape, path, out)
    return out


def conform(value: Any, shape: Any) -> Any:
    """A copy of ``value`` without the parts that do not fit ``shape`` (an empty object or list when its top
    is missing or does not fit an object or list shape)."""
    clean = _walk(value, shape, "", [])
    if clean is _DROP or clean is None:
        return {} if isinstance(shape, (dict, MapOf)) else [] if isinstance(shape, list) else None
    return clean

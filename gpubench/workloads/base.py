"""The workload contract: backend-agnostic knowledge of one benchmark.

A workload knows its parameters (and validates them), makes random inputs, counts FLOPs and
bytes, estimates memory, and checks an output against a float64 NumPy reference with a
dtype-aware tolerance. It never times anything and never touches a device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from gpubench.errors import UsageError

#: Relative-error bound per dtype, before any size scaling (GUIDE.md §4).
BASE_TOLERANCE = {"float64": 1e-13, "float32": 1e-5, "tf32": 1e-3, "float16": 1e-2, "bfloat16": 1e-2}


def host_dtype(dtype: str) -> np.dtype:
    """NumPy dtype that holds host-side values of ``dtype`` exactly.

    NumPy has no bfloat16: its values live in float32 arrays (rounded to bfloat16 first, so
    a backend's conversion to its own bfloat16 is exact).
    """
    if dtype == "bfloat16":
        return np.dtype(np.float32)
    try:
        return np.dtype(dtype)
    except TypeError as exc:
        raise UsageError(f"unknown dtype {dtype!r}") from exc


def round_to_bfloat16(x: np.ndarray) -> np.ndarray:
    """Round float32 values to the nearest bfloat16 (ties to even), returned as float32."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounding = ((bits >> 16) & 1) + np.uint32(0x7FFF)
    return ((bits + rounding) & np.uint32(0xFFFF0000)).view(np.float32)


def random_array(rng: np.random.Generator, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """Uniform values in [-1, 1) that ``dtype`` represents exactly (never zeros: GUIDE.md §4)."""
    x = rng.random(shape, dtype=np.float32 if dtype != "float64" else np.float64) * 2 - 1
    if dtype == "bfloat16":
        return round_to_bfloat16(x)
    return x.astype(host_dtype(dtype), copy=False)


def relative_error(out: np.ndarray, ref: np.ndarray) -> float:
    """‖out − ref‖ / ‖ref‖ in float64 (inf for a shape mismatch or a non-finite output)."""
    out = np.asarray(out)
    if out.shape != ref.shape:
        return math.inf
    out64 = out.astype(np.float64, copy=False)
    if not np.all(np.isfinite(out64)):
        return math.inf
    denom = float(np.linalg.norm(ref))
    num = float(np.linalg.norm(out64 - ref))
    return num / denom if denom > 0 else num


@dataclass(frozen=True)
class Param:
    """One parameter of a workload: its type, default and lower bound."""

    kind: type
    default: Any = None
    minimum: int | None = 1
    choices: tuple[Any, ...] | None = None


class Workload:
    """Base class of every workload. Subclasses set ``name``, ``params`` and implement the hooks."""

    name: str = ""
    #: The headline rate: "gflops" (compute) or "gbps" (bandwidth).
    unit: str = "gflops"
    #: Bumped when the benchmark's meaning changes, so old results become *not comparable*.
    version: int = 1
    params: dict[str, Param] = {}
    description: str = ""

    def normalize_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """Validate ``params`` and fill defaults; raise :class:`UsageError` naming the bad one."""
        out: dict[str, Any] = {}
        for key in params:
            if key not in self.params:
                known = ", ".join(sorted(self.params))
                raise UsageError(f"{self.name}: unknown parameter {key!r} (known: {known})")
        for key, p in self.params.items():
            value = params.get(key, p.default)
            if value is None:
                continue
            out[key] = self._check_value(key, p, value)
        return out

    def _check_value(self, key: str, p: Param, value: Any) -> Any:
        if p.kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise UsageError(f"{self.name}: {key} must be an integer, got {value!r}")
            if p.minimum is not None and value < p.minimum:
                raise UsageError(f"{self.name}: {key} must be >= {p.minimum}, got {value}")
        elif p.kind is bool:
            if not isinstance(value, bool):
                raise UsageError(f"{self.name}: {key} must be true or false, got {value!r}")
        elif p.kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise UsageError(f"{self.name}: {key} must be a number, got {value!r}")
            value = float(value)
        elif p.kind is str and not isinstance(value, str):
            raise UsageError(f"{self.name}: {key} must be a string, got {value!r}")
        if p.choices is not None and value not in p.choices:
            raise UsageError(f"{self.name}: {key} must be one of {list(p.choices)}, got {value!r}")
        return value

    # --- hooks -------------------------------------------------------------------------------
    def make_inputs(self, params: dict[str, Any], dtype: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Random host inputs, exactly representable in ``dtype``."""
        raise NotImplementedError

    def reference(self, inputs: dict[str, np.ndarray], params: dict[str, Any]) -> np.ndarray:
        """The expected output, computed in float64 with NumPy."""
        raise NotImplementedError

    def flops(self, params: dict[str, Any]) -> float | None:
        """Floating-point operations of one call (None for pure data movement)."""
        return None

    def bytes_moved(self, params: dict[str, Any], dtype: str) -> float | None:
        """Fewest bytes one call must move through memory (each input read, output written once)."""
        return None

    def memory_bytes(self, params: dict[str, Any], dtype: str) -> int:
        """Host memory one case needs: inputs, output and float64 reference copies."""
        raise NotImplementedError

    def accumulation_length(self, params: dict[str, Any]) -> int:
        """Length of the sums behind each output element (scales the float tolerance by √K)."""
        return 1

    def tolerance(self, params: dict[str, Any], dtype: str) -> float:
        """Largest relative error accepted for ``dtype`` (tf32 when the case enables it)."""
        key = "tf32" if dtype == "float32" and params.get("tf32") else dtype
        base = BASE_TOLERANCE.get(key, 1e-5)
        if key in ("float64", "float32"):
            return base * math.sqrt(self.accumulation_length(params))
        return base

    def check(self, out: np.ndarray, ref: np.ndarray, params: dict[str, Any], dtype: str) -> tuple[float, float]:
        """Return ``(relative error, tolerance)``; the case is correct when error <= tolerance."""
        return relative_error(out, ref), self.tolerance(params, dtype)

    def describe(self, params: dict[str, Any]) -> str:
        """Short text of the problem size for tables."""
        return " ".join(f"{k}={v}" for k, v in params.items())

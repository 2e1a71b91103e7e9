"""The workload contract: backend-agnostic knowledge of one benchmark.

A workload knows its parameters (and validates them), makes random inputs, counts FLOPs and
bytes, estimates memory, and checks an output against a float64 NumPy reference with a
dtype-aware tolerance. It never touches a device, and it times nothing except where it declares
itself ``self_timed`` (a training run that measures its own epochs).

A new workload is a subclass registered under the ``gpubench.workloads`` entry-point group; the
hooks below are everything the case path, the report and the export ask of it:

* parameters: :attr:`Workload.params` (each a :class:`Param`; ``mode`` parameters switch *how* a
  case runs, not the problem it solves), :meth:`Workload.normalize_params`, :meth:`Workload.describe`;
* inputs and answers: :meth:`make_inputs`, :meth:`reference`, :meth:`check`, :meth:`tolerance`;
* accounting: :meth:`flops`, :meth:`bytes_moved`, :meth:`memory_bytes`, :meth:`device_bytes`, :attr:`unit`;
* running: :meth:`bind` (wrap what a backend built into the op that is timed) and, for
  ``self_timed`` workloads, :meth:`measurement`;
* presentation: :attr:`report_section`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from gpubench.errors import UsageError
from gpubench.timing import GPUBENCH, TIMINGS

#: The generic mode every compute workload may declare: each timed call also copies the inputs from
#: host memory to the device and the output back (see :mod:`gpubench.backends.transfer_wrap`).
INCLUDE_TRANSFER = "include_transfer"

#: The cold-cache mode parameter of bandwidth workloads: ``"cold"`` (before every timed call, outside the
#: timing, a buffer twice the last-level cache is written, and each call is timed on its own) or ``"hot"``
#: (calls back to back, data left in cache). See :func:`gpubench.harness.measure`'s ``flush``.
CACHE = "cache"
CACHE_MODES = ("cold", "hot")

#: The timing mode (see :mod:`gpubench.timing`): how a case's calls are timed. ``"gpubench"`` (the default:
#: the backend's clock, warm-up, batching and adaptive stopping, :func:`gpubench.harness.measure`),
#: ``"host_sync"`` (ten single calls on the host clock, the device synchronized before and after each) or
#: ``"lecture"`` (``timeit``, ten single calls, no synchronization: records flagged ``not_a_measurement``).
TIMING = "timing"
TIMING_DEFAULT = GPUBENCH

#: Relative-error bound per dtype, before any size scaling (docs/measurement.md §3).
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
    """Uniform values in [-1, 1) that ``dtype`` represents exactly (never zeros: docs/measurement.md §3)."""
    x = rng.random(shape, dtype=np.float32 if dtype != "float64" else np.float64)
    x *= 2  # in place: the same values as ``x * 2 - 1``, without two more arrays of the inputs' size
    x -= 1
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
    """One parameter of a workload: its type, default, lower bound and choices.

    ``mode`` marks a switch of *how* a case runs rather than *what* it computes (``tf32``,
    ``include_transfer``, ``layout``, ``cache``): it is never part of the problem size, and it
    is named in chart legends (``tag`` for a true boolean, else ``key=value``; at its default too when
    ``label_default``, for a mode whose default is not the obvious one). When a speedup
    is computed against a CPU case of the same problem, a ``match_reference`` mode must have the
    same value on the CPU side (a cold-cache GPU case against a cold-cache CPU case); any other
    mode is taken at its default there (a TF32 case against the CPU's plain float32).
    """

    kind: type
    default: Any = None
    minimum: int | None = 1
    choices: tuple[Any, ...] | None = None
    mode: bool = False
    match_reference: bool = False
    tag: str = ""
    label_default: bool = False
    omit_default: bool = False
    """The default is never written into a spec (a parameter added later: old specs keep their hashes)."""


def timing_param() -> Param:
    """The ``timing`` mode (:data:`TIMINGS`), matched on the CPU reference; its default is left out of specs, so
    a workload that declares it keeps the spec hashes of its existing cases."""
    return Param(str, default=TIMING_DEFAULT, minimum=None, choices=TIMINGS, mode=True, match_reference=True,
                 omit_default=True)


def cache_param() -> Param:
    """The ``cache`` mode (``cold`` by default, ``hot`` as a suite option), matched on the CPU reference."""
    return Param(str, default="cold", minimum=None, choices=CACHE_MODES, mode=True, match_reference=True,
                 label_default=True)


class Workload:
    """Base class of every workload. Subclasses set ``name``, ``params`` and implement the hooks."""

    name: str = ""
    #: The headline rate: "gflops" (compute) or "gbps" (bandwidth).
    unit: str = "gflops"
    #: Bumped when the benchmark's meaning changes, so old results become *not comparable*.
    version: int = 1
    params: dict[str, Param] = {}
    description: str = ""
    #: The report section that shows this workload: ``throughput`` (rate and speedup against
    #: size), ``transfer`` (bandwidth against copy size) or ``training`` (accuracy against time).
    report_section: str = "throughput"
    #: True when one call is a whole run that times itself (see :meth:`measurement`); the case
    #: path then makes that one call and never hands the op to the harness.
    self_timed: bool = False
    #: True when each call is a request whose latency matters: the case path times every call on its own, on
    #: the host clock around a synchronization (:func:`gpubench.latency.measure_latency`), instead of batching
    #: calls per sample; the export derives latency percentiles and throughput from those samples.
    per_call_latency: bool = False
    #: Op modules this workload brings for existing backends (backend name → module path), for a
    #: workload shipped as a plug-in: ``{"numpy": "mypkg.ops_numpy"}``. A backend's own op module
    #: of the same workload wins.
    ops: dict[str, str] = {}

    def mode_params(self) -> dict[str, Param]:
        """The parameters declared ``mode`` (how a case runs, not what it computes)."""
        return {k: p for k, p in self.params.items() if p.mode}

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
            value = self._check_value(key, p, value)
            if p.omit_default and value == p.default:
                continue
            out[key] = value
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

    # --- the problem: what a reference depends on --------------------------------------------------
    #: Mode parameters that nonetheless change the answer (conv2d's ``layout`` arranges the input and
    #: the output differently): kept in :meth:`problem_params`.
    answer_modes: tuple[str, ...] = ()

    def problem_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """The parameters that change the answer: all but the ``mode`` switches (except :attr:`answer_modes`).

        The inputs' seed and the float64 reference depend on these only, never on the backend, device,
        variant or a mode such as ``tf32`` or ``timing``: every case of one problem draws the same
        inputs and shares one reference (:mod:`gpubench.refcache`).
        """
        modes = self.mode_params()
        return {k: v for k, v in params.items() if k not in modes or k in self.answer_modes}

    def reference_modules(self) -> tuple[str, ...]:
        """Modules whose source computes this workload's inputs and reference (their text is part of the cache key).

        The default: the modules of the workload's classes. A workload whose reference lives in other
        modules as well (MNIST's training loop) names them too.
        """
        return tuple(dict.fromkeys(c.__module__ for c in type(self).__mro__ if c is not object))

    def reference_cost(self, params: dict[str, Any]) -> float:
        """FLOPs of the float64 reference (default :meth:`flops`): a reference is worth caching when it is large
        against the bytes it takes to store (:mod:`gpubench.case`)."""
        return float(self.flops(params) or 0.0)

    def randomized_reference(self, inputs: dict[str, np.ndarray], params: dict[str, Any], seed: int) -> Any:
        """A reference far cheaper than :meth:`reference` that :meth:`check` understands, or None (the default).

        GEMM-shaped workloads return a :class:`~gpubench.workloads.freivalds.Projection` above a size
        (Freivalds' check, O(n²) instead of O(n³)); ``seed`` is the problem's seed, for its random vectors.
        Called on the pristine inputs, before the op runs.
        """
        return None

    # --- hooks -------------------------------------------------------------------------------
    def make_inputs(self, params: dict[str, Any], dtype: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Random host inputs, exactly representable in ``dtype``."""
        raise NotImplementedError

    def reference(self, inputs: dict[str, np.ndarray], params: dict[str, Any]) -> np.ndarray:
        """The expected output, computed in float64 with NumPy (never modified by :meth:`check`: it may be shared)."""
        raise NotImplementedError

    def flops(self, params: dict[str, Any]) -> float | None:
        """Floating-point operations of one call (None for pure data movement)."""
        return None

    def bytes_moved(self, params: dict[str, Any], dtype: str) -> float | None:
        """Fewest bytes one call must move through memory (each input read, output written once)."""
        return None

    def memory_bytes(self, params: dict[str, Any], dtype: str) -> int:
        """Host memory the workload's side of one case needs: inputs, output and float64 reference copies,
        the check's temporaries (always host memory, whatever the device)."""
        raise NotImplementedError

    def device_bytes(self, params: dict[str, Any], dtype: str) -> int:
        """Memory the backend's op holds where it runs: its copies of the inputs and output, scratch
        buffers, an unfused kernel's intermediates.

        On a device that computes from host memory (a CPU) it is host memory on top of
        :meth:`memory_bytes`; :mod:`gpubench.memfit` checks both before a case allocates anything.
        The default, :meth:`memory_bytes` itself, is an upper bound for a workload that does not say.
        """
        return self.memory_bytes(params, dtype)

    def accumulation_length(self, params: dict[str, Any]) -> int:
        """Length of the sums behind each output element (scales the float tolerance by √K)."""
        return 1

    def compute_dtype(self, params: dict[str, Any], dtype: str) -> str:
        """The precision the arithmetic runs in: ``tf32`` for a float32 case that enables it, else ``dtype``.

        It picks the tolerance and, in the report, the compute ceiling a case is held against.
        """
        return "tf32" if dtype == "float32" and params.get("tf32") else dtype

    def mode_tags(self, params: dict[str, Any]) -> list[str]:
        """Short texts of the mode parameters a case sets away from their defaults (``tf32``, ``+copies``,
        ``layout=NHWC``), in declaration order."""
        out = []
        for key, p in self.mode_params().items():
            value = params.get(key, p.default)
            if isinstance(value, bool):
                if value:
                    out.append(p.tag or key)
            elif value is not None and (value != p.default or (p.label_default and key in params)):
                out.append(f"{p.tag or key}={value}")
        return out

    def bound(self, params: dict[str, Any]) -> str | None:
        """The physical ceiling no correct case of this workload can beat (:mod:`gpubench.plausibility`).

        ``"compute"`` when its FLOP count is what every algorithm must perform (dense matmul),
        ``"memory"`` when its byte count is what every call must move through device memory (SAXPY),
        ``"h2d"``/``"d2h"`` for copies over the host link, None when no such ceiling holds (conv2d may
        run as Winograd or FFT with fewer FLOPs than it is credited with). The default is None.
        """
        return None

    def tolerance(self, params: dict[str, Any], dtype: str) -> float:
        """Largest relative error accepted for ``dtype`` (tf32 when the case enables it)."""
        key = self.compute_dtype(params, dtype)
        base = BASE_TOLERANCE.get(key, 1e-5)
        if key in ("float64", "float32"):
            return base * math.sqrt(self.accumulation_length(params))
        return base

    def check(self, out: np.ndarray, ref: np.ndarray, params: dict[str, Any], dtype: str) -> tuple[float, float]:
        """Return ``(relative error, tolerance)``; the case is correct when error <= tolerance."""
        return relative_error(out, ref), self.tolerance(params, dtype)

    def bind(self, op: Any, params: dict[str, Any], dtype: str) -> Any:
        """Turn what the backend's op module built into the :class:`~gpubench.ops.BoundOp` that runs.

        The default is the identity: a kernel workload's backends build the op directly. A
        workload whose backends supply something else (MNIST's backends supply a training
        session, the workload owns the epoch loop and its clock) wraps it here.
        """
        return op

    def measurement(self, op: Any, settings: Any) -> Any:
        """Samples of a ``self_timed`` workload, taken from the one call already made.

        Returns a :class:`~gpubench.harness.Measurement`. Only self-timed workloads implement it.
        """
        raise NotImplementedError(f"{self.name} is not self-timed: the harness measures it")

    def describe(self, params: dict[str, Any]) -> str:
        """Short text of the problem (its size; not its mode parameters, which :meth:`mode_tags` names)."""
        modes = self.mode_params()
        return " ".join(f"{k}={v}" for k, v in params.items() if k not in modes)

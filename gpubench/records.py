"""The shared contract: what was asked (:class:`CaseSpec`) and what was measured (:class:`CaseResult`).

Like ``torch.utils.benchmark``, a record keeps the raw per-call times and derives every
statistic from them; like ``pyperf``, a record is validated when it is made, so a wrong record
fails at birth and never reaches the store or a report. This module imports nothing from the
rest of gpubench except :mod:`gpubench.stats` and :mod:`gpubench.shapes`.

Record format history (``RECORD_VERSION``):

* 1 — first version: spec, status, raw samples, calls per sample, clock, FLOP and byte counts,
  correctness error and tolerance, free-form ``metrics`` and ``device_name``.
* 2 — ``flags`` (per-case warnings from :data:`FLAGS`) and ``host_samples`` (host-clock time per
  call beside device-clock ``samples``). A version-1 record reads as one without flags whose host
  time is its device time.
* 3 — ``machine`` (the machine's state around the case: other processes' CPU use, load, CPU
  frequency, GPU clocks, temperature, power, throttle reasons; see :mod:`gpubench.machine`) and
  ``energy`` (joules per call from NVML or RAPL, or the reason there is none), and the flags
  ``busy`` and ``throttled``. A version-1 or 2 record reads with no machine state and the energy
  reason "not recorded".
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

from gpubench.shapes import MACHINE, METRICS, conform
from gpubench.stats import Summary, summarize

RECORD_VERSION = 3

#: Status of a finished case.
STATUSES = ("ok", "incorrect", "error", "timeout", "skipped")

#: Floating-point dtypes the suite knows about, widest first. The float8 formats are the operand
#: formats of FP8 matmul (see :mod:`gpubench.workloads.matmul_fp8`).
DTYPES = ("float64", "float32", "float16", "bfloat16", "float8_e4m3fn", "float8_e5m2")

#: Clocks a measurement may be taken with. ``unsynchronized`` is the host clock read without waiting for the
#: device (the lecture's ``timeit`` of an asynchronous call, :mod:`gpubench.timing`): its records are never
#: a measurement (flag ``not_a_measurement``).
CLOCKS = ("perf_counter", "cuda_event", "opencl_event", "fake", "unsynchronized")

#: Per-case warnings a record may carry, with what each means. A flag never changes a status: an
#: ``ok`` case with flags is correct, but its number needs the caveat the flag names.
FLAGS = {
    "noisy": "the median's 95 % interval did not reach the target within the time budget",
    "launch_bound": "the host took at least as long per call as the device: launch overhead, not the kernel",
    "implausible": "the rate is above a physical ceiling of the device (a measurement error, not a result)",
    "above_ceiling": "the rate is above the machine's measured ceiling (calibrate again, without --quick)",
    "busy": "other processes took more than a quarter of a core, on average, while the case was measured",
    "throttled": "the GPU lowered its clock below its loaded clock while measured (thermal or hardware slowdown, "
                 "power brake, sync boost; its software power cap, normal under load, is recorded, not flagged)",
    "not_a_measurement": "timed as in the lecture, without waiting for the device: on an asynchronous device the "
                         "launch, not the work; shown only to be shown wrong (never a speedup, headline or comparison)",
}

#: The flag of a record timed on the ``unsynchronized`` clock (see :data:`FLAGS`).
NOT_A_MEASUREMENT = "not_a_measurement"


def is_measurement(flags: tuple[str, ...] | list[str] | None) -> bool:
    """Whether a record (by its flags) is a measurement at all: False for the lecture's unsynchronized timing."""
    return NOT_A_MEASUREMENT not in (flags or ())


#: Keys of an ``energy`` entry that, when present, must be positive finite numbers.
_ENERGY_NUMBERS = ("joules_per_call", "joules", "window_s", "watts")


def _check_energy(entry: Any, where: str = "energy") -> None:
    """An energy entry holds ``joules_per_call`` with its ``source``, or a ``reason`` — never a zero."""
    if not isinstance(entry, dict):
        raise RecordError(f"{where} must be a dict, got {type(entry).__name__}")
    for key in _ENERGY_NUMBERS:
        v = entry.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
                              or v <= 0):
            raise RecordError(f"{where}.{key} must be a positive finite number, got {v!r}")
    calls = entry.get("calls")
    if calls is not None and (isinstance(calls, bool) or not isinstance(calls, int) or calls < 1):
        raise RecordError(f"{where}.calls must be a positive integer, got {calls!r}")
    if entry.get("joules_per_call") is not None:
        if not isinstance(entry.get("source"), str) or not entry["source"]:
            raise RecordError(f"{where} has joules per call but no source")
    elif not isinstance(entry.get("reason"), str) or not entry["reason"]:
        raise RecordError(f"{where} needs joules_per_call or the reason there is none")


class RecordError(ValueError):
    """A record or spec that violates the contract (raised when it is made)."""


def _freeze_params(params: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    out = []
    for key in sorted(params):
        value = params[key]
        if isinstance(value, list):
            value = tuple(value)
        if not isinstance(value, (int, float, str, bool, tuple, type(None))):
            raise RecordError(f"parameter {key!r} has unsupported type {type(value).__name__}")
        out.append((key, value))
    return tuple(out)


@dataclass(frozen=True)
class CaseSpec:
    """One case as asked for: which workload, on which backend, device and dtype, with which parameters.

    ``variant`` names an implementation of the workload inside a backend (for example
    ``cublas`` or ``tiled`` for CuPy matmul); ``"default"`` when a backend has only one.
    """

    workload: str
    backend: str
    device: str
    dtype: str
    params: tuple[tuple[str, Any], ...] = ()
    variant: str = "default"
    suite: str = ""

    @classmethod
    def make(
        cls,
        workload: str,
        backend: str,
        device: str,
        dtype: str,
        params: dict[str, Any] | None = None,
        variant: str = "default",
        suite: str = "",
    ) -> CaseSpec:
        """Build a spec from a plain parameter dict (validated and frozen)."""
        for name, value in (("workload", workload), ("backend", backend), ("device", device), ("variant", variant)):
            if not isinstance(value, str) or not value:
                raise RecordError(f"case {name} must be a non-empty string, got {value!r}")
        if not isinstance(suite, str):
            raise RecordError(f"case suite must be a string, got {suite!r}")
        if not isinstance(dtype, str):
            raise RecordError(f"unknown dtype {dtype!r} (known: {', '.join(DTYPES)})")
        if dtype not in DTYPES and not dtype.startswith(("uint", "int")):
            raise RecordError(f"unknown dtype {dtype!r} (known: {', '.join(DTYPES)})")
        return cls(workload, backend, device, dtype, _freeze_params(params or {}), variant, suite)

    @property
    def param_dict(self) -> dict[str, Any]:
        """Parameters as a plain dict."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.params}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "suite": self.suite,
            "workload": self.workload,
            "backend": self.backend,
            "device": self.device,
            "dtype": self.dtype,
            "variant": self.variant,
            "params": self.param_dict,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CaseSpec:
        """Inverse of :meth:`to_dict`."""
        return cls.make(
            data["workload"],
            data["backend"],
            data["device"],
            data["dtype"],
            data.get("params") or {},
            data.get("variant", "default"),
            data.get("suite", ""),
        )

    def match_key(self) -> str:
        """What makes two cases 'the same benchmark' across runs (suite name excluded)."""
        d = self.to_dict()
        d.pop("suite")
        return json.dumps(d, sort_keys=True, separators=(",", ":"))

    @property
    def implementation(self) -> str:
        """The backend and its variant as one name: ``torch``, ``cupy[tiled]`` (the default variant is implied)."""
        return self.backend if self.variant == "default" else f"{self.backend}[{self.variant}]"

    @property
    def series(self) -> str:
        """Implementation on its device, ``cupy[tiled]:cuda:0``: what one line of a chart is."""
        return f"{self.implementation}:{self.device}"

    def label(self) -> str:
        """Short human label, e.g. ``matmul torch:cpu float32 m=n=k=1024``."""
        p = " ".join(f"{k}={v}" for k, v in self.params)
        return f"{self.workload} {self.series} {self.dtype} {p}".strip()


def spec_hash(spec: CaseSpec, sources: dict[str, str] | None = None) -> str:
    """Hash of the spec plus the source text of every kernel and workload it runs.

    Two results are comparable only when their hashes agree: a changed kernel source changes
    the hash, so a run-to-run comparison marks the case *not comparable* instead of calling a
    different benchmark a regression (the ``asv`` rule).
    """
    h = hashlib.sha256(spec.match_key().encode())
    for name in sorted(sources or {}):
        h.update(b"\0" + name.encode() + b"\0" + (sources or {})[name].encode())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class CaseResult:
    """What was measured for one :class:`CaseSpec`.

    ``samples`` are per-call times in seconds; each sample timed ``number`` back-to-back calls
    and was divided by it. All statistics are derived from ``samples``.
    """

    spec: CaseSpec
    status: str
    samples: tuple[float, ...] = ()
    number: int = 1
    clock: str = "perf_counter"
    error: str = ""
    flops: float | None = None
    bytes: float | None = None
    rel_error: float | None = None
    tolerance: float | None = None
    target_met: bool | None = None
    device_name: str = ""
    spec_hash: str = ""
    wall_s: float = 0.0
    metrics: dict[str, Any] = field(default_factory=dict)
    flags: tuple[str, ...] = ()
    """Warnings about this measurement (names from :data:`FLAGS`), sorted and unique."""
    host_samples: tuple[float, ...] = ()
    """Host-clock time per call for each sample when ``clock`` is a device clock (empty: same as ``samples``)."""
    machine: dict[str, Any] = field(default_factory=dict)
    """The machine around the case (``cpu``: other processes' cores, load, MHz; ``gpu``: clocks, power,
    temperature, throttle reasons; ``series``: periodic samples); see :class:`gpubench.machine.CaseWatch`."""
    energy: dict[str, Any] = field(default_factory=dict)
    """``joules_per_call`` with its ``source`` (``nvml:0``, ``rapl``), ``joules``, ``calls``, ``window_s``
    and ``watts``; or a ``reason`` (``not available: …``). GPU cases may add ``host``: the CPU
    packages' energy (RAPL) over the same window, in the same shape. Filled with a reason when empty."""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise RecordError(f"unknown status {self.status!r}")
        if self.clock not in CLOCKS:
            raise RecordError(f"unknown clock {self.clock!r}")
        if not isinstance(self.number, int) or self.number < 1:
            raise RecordError(f"calls per sample must be a positive integer, got {self.number!r}")
        for s in (*self.samples, *self.host_samples):
            if not (isinstance(s, float) and math.isfinite(s) and s > 0):
                raise RecordError(f"sample {s!r} is not a positive finite time")
        if self.host_samples and len(self.host_samples) != len(self.samples):
            raise RecordError(f"{len(self.host_samples)} host samples for {len(self.samples)} samples")
        unknown = [f for f in self.flags if f not in FLAGS]
        if unknown:
            raise RecordError(f"unknown flag(s) {', '.join(map(repr, unknown))} (known: {', '.join(FLAGS)})")
        if self.clock == "unsynchronized" and NOT_A_MEASUREMENT not in self.flags:
            raise RecordError(f"a record on the unsynchronized clock must carry the flag {NOT_A_MEASUREMENT!r}")
        if tuple(sorted(set(self.flags))) != tuple(self.flags):
            object.__setattr__(self, "flags", tuple(sorted(set(self.flags))))
        if self.status in ("ok", "incorrect") and not self.samples:
            raise RecordError(f"a case with status {self.status!r} needs samples")
        if self.status in ("error", "timeout", "skipped") and not self.error:
            raise RecordError(f"a case with status {self.status!r} needs a reason")
        if self.status == "incorrect" and self.rel_error is None:
            raise RecordError("an incorrect case must carry its error")
        for name in ("flops", "bytes"):
            v = getattr(self, name)
            if v is not None and (not math.isfinite(v) or v < 0):
                raise RecordError(f"{name} must be a non-negative number, got {v!r}")
        if not isinstance(self.machine, dict):
            raise RecordError(f"machine must be a dict, got {type(self.machine).__name__}")
        other = (self.machine.get("cpu") or {}).get("other_cores")
        if other is not None and (isinstance(other, bool) or not isinstance(other, (int, float))
                                  or not math.isfinite(other) or other < 0):
            raise RecordError(f"machine.cpu.other_cores must be a non-negative number, got {other!r}")
        if not self.energy:
            why = "no measured window" if self.status == "ok" else f"the case ended as {self.status}"
            object.__setattr__(self, "energy", {"reason": f"not measured: {why}"})
        _check_energy(self.energy)
        if self.energy.get("host") is not None:
            _check_energy(self.energy["host"], "energy.host")

    @functools.cached_property
    def summary(self) -> Summary | None:
        """Statistics of the samples (computed once), or None when there are none."""
        return summarize(list(self.samples)) if self.samples else None

    @property
    def median_s(self) -> float | None:
        """Median per-call time in seconds."""
        s = self.summary
        return s.median if s else None

    @property
    def host_median_s(self) -> float | None:
        """Median host-clock time per call (equal to :attr:`median_s` on host-timed backends)."""
        if not self.host_samples:
            return self.median_s
        return summarize(list(self.host_samples)).median

    @property
    def gflops(self) -> float | None:
        """GFLOP/s at the median time (None without FLOPs or for a non-ok case)."""
        med = self.median_s
        if self.status != "ok" or not self.flops or not med:
            return None
        return self.flops / med / 1e9

    @property
    def gbps(self) -> float | None:
        """GB/s (10⁹ bytes per second) at the median time."""
        med = self.median_s
        if self.status != "ok" or not self.bytes or not med:
            return None
        return self.bytes / med / 1e9

    @property
    def joules_per_call(self) -> float | None:
        """Energy of one call on the case's device (NVML for a GPU, RAPL for the CPU), or None."""
        return self.energy.get("joules_per_call") if self.status == "ok" else None

    @property
    def energy_reason(self) -> str:
        """Why there is no energy per call ('' when there is)."""
        return "" if self.joules_per_call is not None else str(self.energy.get("reason") or "not measured")

    @property
    def gflop_per_joule(self) -> float | None:
        """GFLOP per joule (None without FLOPs or energy)."""
        j = self.joules_per_call
        return self.flops / 1e9 / j if j and self.flops else None

    @property
    def gb_per_joule(self) -> float | None:
        """GB (10⁹ bytes) moved per joule (None without bytes or energy)."""
        j = self.joules_per_call
        return self.bytes / 1e9 / j if j and self.bytes else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (raw data only; statistics are derived on read)."""
        return {
            "record_version": RECORD_VERSION,
            "spec": self.spec.to_dict(),
            "status": self.status,
            "samples": list(self.samples),
            "number": self.number,
            "clock": self.clock,
            "error": self.error,
            "flops": self.flops,
            "bytes": self.bytes,
            "rel_error": self.rel_error,
            "tolerance": self.tolerance,
            "target_met": self.target_met,
            "device_name": self.device_name,
            "spec_hash": self.spec_hash,
            "wall_s": self.wall_s,
            "metrics": self.metrics,
            "flags": list(self.flags),
            "host_samples": list(self.host_samples),
            "machine": self.machine,
            "energy": self.energy,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CaseResult:
        """Inverse of :meth:`to_dict` (validates)."""
        version = data.get("record_version", 1)
        if version > RECORD_VERSION:
            raise RecordError(f"record version {version} is newer than this gpubench ({RECORD_VERSION})")
        return cls(
            spec=CaseSpec.from_dict(data["spec"]),
            status=data["status"],
            samples=tuple(float(s) for s in data.get("samples") or ()),
            number=int(data.get("number", 1)),
            clock=data.get("clock", "perf_counter"),
            error=data.get("error") or "",
            flops=data.get("flops"),
            bytes=data.get("bytes"),
            rel_error=data.get("rel_error"),
            tolerance=data.get("tolerance"),
            target_met=data.get("target_met"),
            device_name=data.get("device_name") or "",
            spec_hash=data.get("spec_hash") or "",
            wall_s=float(data.get("wall_s") or 0.0),
            metrics=conform(data.get("metrics") or {}, METRICS),  # the shapes readers rely on, whatever was stored
            flags=tuple(data.get("flags") or ()),
            host_samples=tuple(float(s) for s in data.get("host_samples") or ()),
            machine=conform(data.get("machine") or {}, MACHINE),
            energy=data.get("energy") or ({"reason": f"not recorded: a version-{version} record (before gpubench "
                                                     "measured energy)"} if version < 3 else {}),
        )

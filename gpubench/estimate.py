"""How long a case will take, before it runs: the cost model behind ``--time-limit`` and ``--dry-run``.

A case's wall time is the sum of what the case path does (:mod:`gpubench.case`) and what the harness
does (:func:`gpubench.harness.measure`):

* **setup**: draw the inputs on the host, compute the float64 reference, copy the inputs to the
  device, check one call's output, and a fixed cost per case (the worker's request, the machine
  watch before and after);
* **one call** (``call_s``): the workload's FLOPs at a plausible rate of the device for the
  case's compute dtype, or its bytes at the device's memory bandwidth (the host link for
  host↔device copies), whichever is longer, and never less than the backend's dispatch cost;
* **measurement**: the harness's warm-up (``warmup_s`` and ``warmup_min_calls``), its loop
  calibration, and its sampling, at least ``min_samples`` samples and, where the median's
  interval is slow to settle (CPUs usually), about the sampling budget ``budget_s``. A
  cold-cache case pays a cache flush per sample; the lecture's two naive ways are ten calls
  each; a self-timed training case is its one call (epochs × steps), plus its float64 reference
  training on the host.

A backend's **startup** (a worker process that imports its framework and answers the probe)
is counted once, for the first case of that backend a worker has to be started for.

Rates before anything is measured come from the machine: a CPU's width and clock
(:func:`gpubench.plausibility.cpu_flop_per_cycle`, at a fraction a BLAS reaches), a known GPU's
datasheet (:mod:`gpubench.datasheet`, at the fraction cuBLAS and a large copy reach), else
conservative defaults per device kind; a machine's measured ceilings, when given, replace them.
The model is then **refined with what the run measures**: each finished case's rate (GFLOP/s or
GB/s) for the next cases of the same backend, device kind, workload and compute dtype; the ratio
of each case's real wall time to its estimate, per backend and device kind (a factor applied to
the next ones); and each backend's real startup. Everything is deterministic for the same
observations: tests drive it with fixed rates and fake clocks.

:class:`TimeBudget` is the other half of ``--time-limit``: a deadline on a clock, asked whether an
estimate still fits.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gpubench.errors import UsageError
from gpubench.harness import HarnessSettings
from gpubench.records import CaseResult, CaseSpec

# --- durations ------------------------------------------------------------------------------------

_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0}
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([hms])", re.IGNORECASE)
#: Words that mean "no time limit" (``--time-limit none`` overrides a suite's own limit).
NO_LIMIT = ("none", "inf", "off")


def parse_duration(text: str | float | int, option: str = "--time-limit") -> float | None:
    """Seconds in ``text``: ``90``, ``90s``, ``8m``, ``1h``, ``1h30m``, ``4m45s``, ``2.5m``; None for ``none``,
    ``inf`` or ``off`` (no limit).

    Anything else, zero or a negative value is a :class:`UsageError` naming ``option``.
    """
    if isinstance(text, bool):
        raise UsageError(f"{option} must be a duration such as 90s, 8m or 1h30m, got {text!r}")
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        raw = str(text).strip().lower()
        if raw in NO_LIMIT:
            return None
        try:
            value = float(raw)
        except ValueError:
            parts = _DURATION.findall(raw)
            if not parts or _DURATION.sub("", raw).strip():
                raise UsageError(f"{option} must be a duration such as 90s, 8m or 1h30m (or none), "
                                 f"got {text!r}") from None
            units = [u for _, u in parts]
            if len(set(units)) != len(units):
                raise UsageError(f"{option}: each of h, m and s at most once, got {text!r}") from None
            value = sum(float(n) * _UNITS[u] for n, u in parts)
    if not math.isfinite(value) or value <= 0:
        if math.isinf(value) and value > 0:
            return None
        raise UsageError(f"{option} must be a positive duration such as 90s, 8m or 1h30m, got {text!r}")
    return value


def format_duration(seconds: float | None) -> str:
    """``4m45s``, ``52s``, ``1.5s``, ``1h02m`` (``-`` for None)."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    if seconds < 10:
        return f"{seconds:.1f}s"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


# --- rates -----------------------------------------------------------------------------------------

#: Host-side seconds per call of each backend's dispatch (Python, the framework, the launch): the floor of a call.
DISPATCH_S = {"numpy": 2e-6, "torch": 6e-6, "cupy": 8e-6, "jax": 15e-6, "opencl": 15e-6, "tensorflow": 40e-6}
DEFAULT_DISPATCH_S = 10e-6
#: Seconds a backend's worker takes to start and answer its probe (framework import, device listing), before measured.
STARTUP_S = {"numpy": 0.6, "torch": 3.0, "cupy": 2.5, "jax": 3.0, "opencl": 1.5, "tensorflow": 7.0}
DEFAULT_STARTUP_S = 3.0
#: Fixed seconds of every case: the worker's request and reply, the machine watch at its start and end (a short
#: measured window is followed by an idle watch of up to 0.3 s).
CASE_OVERHEAD_S = 0.4
#: Bytes per second the host draws random inputs at (NumPy's generator, one core).
HOST_DRAW_BPS = 1.5e9
#: Fraction of a datasheet peak that a library reaches (cuBLAS on a large GEMM, a large copy).
DATASHEET_FRACTION = 0.7
#: Fraction of a CPU's width × clock that a BLAS reaches on a large GEMM.
CPU_BLAS_FRACTION = 0.4
#: Implementation variants far from their backend's library rate (hand-written kernels), as a fraction of it.
VARIANT_FRACTION = {"naive": 0.05, "tiled": 0.2, "blocked": 0.3, "math": 0.5, "raw": 1.0}
#: Fraction of the sampling budget a case uses before its median's interval reaches the target:
#: CPUs are seldom quiet enough to stop early, accelerators usually are.
BUDGET_FRACTION = {"cpu": 1.0, "opencl": 1.0}
DEFAULT_BUDGET_FRACTION = 0.3
#: Training (self-timed) cases: fraction of the compute rate small batches reach, and seconds per optimizer step.
TRAINING_FRACTION = {"cpu": 0.15}
DEFAULT_TRAINING_FRACTION = 0.03
STEP_S = {"cpu": 5e-4}
DEFAULT_STEP_S = 2e-3
#: A learned correction factor stays within these bounds (one odd case must not poison the rest).
FACTOR_BOUNDS = (0.2, 5.0)
#: Seconds to start the ranks of a collective case (each rank is a process that imports torch), per rank.
RANK_START_S = 1.5
#: Seconds of a case that is skipped at once (its device is absent: a CUDA case where nvidia-smi lists no GPU).
SKIP_S = 0.05


@dataclass
class DeviceRates:
    """Plausible rates of one device kind: GFLOP/s per compute dtype and GB/s of memory and host link."""

    gflops: dict[str, float]
    mem_gbps: float
    pinned_gbps: float
    pageable_gbps: float
    flush_bytes: float
    """Bytes a cold-cache flush writes (twice the last-level cache)."""
    source: str = "default"

    def compute(self, dtype: str) -> float:
        """GFLOP/s for ``dtype`` (float32's rate for a dtype without one of its own)."""
        return self.gflops.get(dtype) or self.gflops.get("float32") or 1.0


def _cpu_rates(environment: dict[str, Any]) -> DeviceRates:
    from gpubench.plausibility import cpu_flop_per_cycle

    cpu = environment.get("cpu") if isinstance(environment.get("cpu"), dict) else {}
    cores = int(cpu.get("logical_cores") or cpu.get("affinity") or 0) or _cpu_count()
    mhz = float(cpu.get("freq_mhz") or 0) or 3000.0
    flags = cpu.get("isa") or []
    per_cycle = {d: cpu_flop_per_cycle(d, flags) for d in ("float64", "float32")}
    f32 = cores * per_cycle["float32"] * mhz / 1000.0 * CPU_BLAS_FRACTION
    f64 = cores * per_cycle["float64"] * mhz / 1000.0 * CPU_BLAS_FRACTION
    mem = min(200.0, 6.0 * cores)
    from gpubench.cacheflush import host_cache_bytes

    try:
        llc = float(host_cache_bytes()[0])
    except Exception:  # noqa: BLE001 - an estimate needs a number, not the exact cache
        llc = 32e6
    return DeviceRates({"float64": f64, "float32": f32, "tf32": f32, "bfloat16": f32 / 4, "float16": f32 / 8,
                        "float8_e4m3fn": f32 / 8, "float8_e5m2": f32 / 8},
                       mem, mem, mem, 2 * llc, f"{cores} CPUs at {mhz:.0f} MHz")


def _cpu_count() -> int:
    import os

    return os.cpu_count() or 1


#: An accelerator nobody named: rates a recent data-centre GPU reaches (an estimate errs long, so a limit is kept).
_GPU_DEFAULT = {"float64": 5000.0, "float32": 15000.0, "tf32": 60000.0, "bfloat16": 120000.0, "float16": 120000.0,
                "float8_e4m3fn": 200000.0, "float8_e5m2": 200000.0}


def _gpu_rates(environment: dict[str, Any]) -> DeviceRates:
    from gpubench.datasheet import datasheet_for

    names = [str(g.get("name") or "") for g in environment.get("gpus") or [] if isinstance(g, dict)]
    for name in names:
        found = datasheet_for(name)
        if found:
            sheet_name, peaks = found
            gflops = {k: v * 1000.0 * DATASHEET_FRACTION for k, v in peaks.items() if k != "mem_gbps"}
            mem = float(peaks.get("mem_gbps", 1000.0)) * DATASHEET_FRACTION
            return DeviceRates({**_GPU_DEFAULT, **gflops}, mem, 20.0, 8.0, 100e6, f"{sheet_name} datasheet")
    return DeviceRates(dict(_GPU_DEFAULT), 1000.0, 12.0, 5.0, 100e6)


def _with_ceilings(rates: DeviceRates, ceilings: list[dict[str, Any]]) -> DeviceRates:
    """``rates`` with measured ceilings (``gpubench calibrate``'s rows of one device kind) in place of the priors."""
    from gpubench.store import D2H_BW, H2D_BW, MEM_BW, PEAK_FLOPS

    out = DeviceRates(dict(rates.gflops), rates.mem_gbps, rates.pinned_gbps, rates.pageable_gbps,
                      rates.flush_bytes, rates.source)
    for c in ceilings:
        value = float(c.get("value") or 0)
        if value <= 0:
            continue
        if c.get("kind") == PEAK_FLOPS and c.get("dtype"):
            out.gflops[c["dtype"]] = value
        elif c.get("kind") == MEM_BW:
            out.mem_gbps = value
        elif c.get("kind") in (H2D_BW, D2H_BW):
            out.pinned_gbps = value
        out.source = "measured ceilings"
    return out


def device_kind(spec: CaseSpec) -> str:
    """``cpu``, ``cuda``, ``opencl``, ... of a case (its device id's prefix)."""
    return spec.device.split(":")[0]


# --- the model ---------------------------------------------------------------------------------------


@dataclass
class _Learned:
    ratios: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    rates: dict[tuple, float] = field(default_factory=dict)
    startup: dict[str, float] = field(default_factory=dict)
    unavailable: set[str] = field(default_factory=set)


class CostModel:
    """Estimates a case's wall time (:meth:`case_s`) and one call's time (:meth:`call_s`), and learns from the run.

    ``environment`` is the host's (:func:`gpubench.envinfo.capture_host`: CPU width and clock, GPU names);
    ``ceilings`` are measured ceiling rows (``gpubench calibrate``) of this machine; ``rates`` overrides the
    rates of a device kind outright (tests).
    """

    def __init__(self, settings: HarnessSettings = HarnessSettings(), environment: dict[str, Any] | None = None,
                 ceilings: list[dict[str, Any]] | tuple = (), rates: dict[str, DeviceRates] | None = None):
        self.settings = settings
        self.environment = environment or {}
        self._ceilings = list(ceilings)
        self._rates: dict[str, DeviceRates] = dict(rates or {})
        self.learned = _Learned()
        self._seen: set[str] = set()  # device kinds a case has run on in this run

    # --- rates ---------------------------------------------------------------------------------
    def rates(self, kind: str) -> DeviceRates:
        """The rates of a device kind (``cpu``, ``cuda``, ``opencl``...), built once."""
        if kind not in self._rates:
            if kind == "cpu":
                base = _cpu_rates(self.environment)
            elif kind == "opencl":  # PoCL on a CPU, or a GPU we cannot name before its worker starts: the slower
                cpu = _cpu_rates(self.environment)
                base = DeviceRates({k: v * 0.3 for k, v in cpu.gflops.items()}, cpu.mem_gbps, cpu.pinned_gbps,
                                   cpu.pageable_gbps, cpu.flush_bytes, "a CPU OpenCL device (PoCL)")
            else:
                base = _gpu_rates(self.environment)
            prefix = {kind, f"{kind}:0"}
            mine = [c for c in self._ceilings if str(c.get("device", "")) in prefix]
            self._rates[kind] = _with_ceilings(base, mine) if mine else base
        return self._rates[kind]

    @staticmethod
    def _workload(spec: CaseSpec):
        from gpubench.workloads import find_workload

        return find_workload(spec.workload)

    def _work(self, spec: CaseSpec) -> tuple[float, float, str | None, str, str]:
        """(FLOPs, bytes, bound, compute dtype, unit) of one call; zeros for a workload this gpubench lacks."""
        w = self._workload(spec)
        if w is None:
            return 0.0, 0.0, None, spec.dtype, "gflops"
        p = self._params(spec)
        try:
            flops = float(w.flops(p) or 0.0)
        except Exception:  # noqa: BLE001 - an estimate of an odd case is its floor, never an error
            flops = 0.0
        try:
            nbytes = float(w.bytes_moved(p, spec.dtype) or 0.0)
        except Exception:  # noqa: BLE001
            nbytes = 0.0
        try:
            bound = w.bound(p)
        except Exception:  # noqa: BLE001
            bound = None
        try:
            cdtype = w.compute_dtype(p, spec.dtype)
        except Exception:  # noqa: BLE001
            cdtype = spec.dtype
        return flops, nbytes, bound, cdtype, w.unit

    def _params(self, spec: CaseSpec) -> dict[str, Any]:
        """The case's parameters as its workload normalizes them (``size=1024`` is ``m=n=k=1024``)."""
        w = self._workload(spec)
        try:
            return w.normalize_params(spec.param_dict) if w is not None else spec.param_dict
        except Exception:  # noqa: BLE001 - an odd case keeps its own parameters
            return spec.param_dict

    def _learned_key(self, spec: CaseSpec, cdtype: str) -> tuple:
        p = spec.param_dict
        return (spec.backend, device_kind(spec), spec.workload, spec.variant, cdtype,
                p.get("direction"), p.get("memory"), bool(p.get("include_transfer")))

    def call_s(self, spec: CaseSpec) -> float:
        """Seconds of one call of ``spec`` on its device (a self-timed case: its whole training run)."""
        flops, nbytes, bound, cdtype, unit = self._work(spec)
        kind = device_kind(spec)
        r = self.rates(kind)
        floor = DISPATCH_S.get(spec.backend, DEFAULT_DISPATCH_S)
        w = self._workload(spec)
        if w is not None and w.self_timed:
            return self._training_s(spec, flops, kind, cdtype, r)
        learned = self.learned.rates.get(self._learned_key(spec, cdtype))
        work = nbytes if unit == "gbps" else flops
        if learned and work:
            return max(work / (learned * 1e9), floor)
        fraction = VARIANT_FRACTION.get(spec.variant, 1.0)
        compute = flops / (r.compute(cdtype) * 1e9 * fraction) if flops else 0.0
        p = self._params(spec)
        if bound in ("h2d", "d2h"):
            link = r.pinned_gbps if p.get("memory") == "pinned" else r.pageable_gbps
            memory = nbytes / (link * 1e9)
        else:
            memory = nbytes / (r.mem_gbps * 1e9 * min(1.0, fraction * 2)) if nbytes else 0.0
        t = max(compute, memory, floor)
        if p.get("include_transfer") and kind != "cpu":
            t += nbytes / (r.pageable_gbps * 1e9)
        if "ranks" in p:  # a collective: each rank moves its buffer over the link between devices, several times
            t = max(t, 2.0 * float(p.get("bytes", 0)) / (r.pinned_gbps * 1e9))
        return t

    def _training_s(self, spec: CaseSpec, flops_per_epoch: float, kind: str, cdtype: str, r: DeviceRates) -> float:
        p = self._params(spec)
        epochs = float(p.get("epochs") or 1)
        steps = float(p.get("train_size") or 0) / max(1.0, float(p.get("batch_size") or 1))
        fraction = TRAINING_FRACTION.get(kind, DEFAULT_TRAINING_FRACTION)
        step = STEP_S.get(kind, DEFAULT_STEP_S)
        epoch = flops_per_epoch / (r.compute(cdtype) * 1e9 * fraction) + steps * step
        learned = self.learned.rates.get(self._learned_key(spec, cdtype))
        if learned and flops_per_epoch:
            epoch = flops_per_epoch / (learned * 1e9)
        return epochs * epoch + 0.5  # + evaluation and the data set's load

    def absent(self, spec: CaseSpec) -> bool:
        """Whether the case will be skipped at once: its backend's probe said it is unavailable, or its device is
        known to be absent (a CUDA case on a host whose nvidia-smi lists no GPU, and none has run in this run)."""
        if spec.backend in self.learned.unavailable:
            return True
        return (device_kind(spec) == "cuda" and "cuda" not in self._seen and "gpus" in self.environment
                and not self.environment["gpus"])

    def case_s(self, spec: CaseSpec) -> float:
        """Estimated wall seconds of the whole case (setup, verification, measurement), its backend already started."""
        if self.absent(spec):
            return SKIP_S
        return self.raw_case_s(spec) * self.factor(spec)

    def raw_case_s(self, spec: CaseSpec) -> float:
        """:meth:`case_s` before the factor learned from this run's earlier cases."""
        call = self.call_s(spec)
        flops, nbytes, bound, cdtype, unit = self._work(spec)
        kind = device_kind(spec)
        cpu = self.rates("cpu")
        w = self._workload(spec)
        p = self._params(spec)
        try:
            host_bytes = float(w.memory_bytes(p, spec.dtype)) if w is not None else 0.0
        except Exception:  # noqa: BLE001
            host_bytes = 0.0
        setup = CASE_OVERHEAD_S + host_bytes / HOST_DRAW_BPS
        if "ranks" in p:
            setup += RANK_START_S * float(p.get("ranks") or 1)
        if w is not None and w.self_timed:
            # The float64 reference training on the host, then the one call that is the whole run.
            ref = self._training_s(spec, flops, "cpu", "float64", cpu)
            return setup + ref + call
        # The float64 reference: a product's FLOPs on the host's float64 BLAS, else a pass over the data.
        if unit == "gflops" and flops and bound != "memory":
            setup += flops / (cpu.compute("float64") * 1e9)
        else:
            setup += host_bytes / (cpu.mem_gbps * 1e9)
        if kind != "cpu":
            setup += nbytes / (self.rates(kind).pinned_gbps * 1e9)
        timing = p.get("timing", "gpubench")
        if timing in ("lecture", "host_sync"):
            return setup + call + 10 * call
        return setup + call + self._harness_s(call, kind, p.get("cache") == "cold")

    def _harness_s(self, call: float, kind: str, cold: bool) -> float:
        """Warm-up, loop calibration and sampling of :func:`gpubench.harness.measure` for a call of ``call`` seconds."""
        s = self.settings
        flush = self.rates(kind).flush_bytes / (self.rates(kind).mem_gbps * 1e9) if cold else 0.0
        one = call + flush
        warm = max(s.warmup_s, s.warmup_min_calls * one) + one
        sample = one if cold else max(s.min_sample_s, call)
        calibration = 0.0 if cold else 1.5 * sample
        least = s.min_samples * sample
        most = min(max(least, s.budget_s + sample), s.max_samples * sample)
        expected = max(least, BUDGET_FRACTION.get(kind, DEFAULT_BUDGET_FRACTION) * s.budget_s)
        return warm + calibration + min(most, expected)

    def startup_s(self, backend: str) -> float:
        """Seconds to start ``backend``'s worker and answer its probe (measured in this run once seen)."""
        return self.learned.startup.get(backend, STARTUP_S.get(backend, DEFAULT_STARTUP_S))

    def factor(self, spec: CaseSpec) -> float:
        """Correction learned from this run: the geometric mean of real/estimated wall times of the earlier cases
        of the same backend and device kind (all cases' when there are none yet), with the model itself as one
        observation of 1, within :data:`FACTOR_BOUNDS`."""
        key = (spec.backend, device_kind(spec))
        ratios = self.learned.ratios.get(key)
        if not ratios:
            ratios = [r for rs in self.learned.ratios.values() for r in rs]
        if not ratios:
            return 1.0
        logs = [0.0] + [math.log(r) for r in ratios]
        lo, hi = FACTOR_BOUNDS
        return min(hi, max(lo, math.exp(sum(logs) / len(logs))))

    # --- learning ----------------------------------------------------------------------------------
    def observe(self, spec: CaseSpec, elapsed_s: float, result: CaseResult | None = None) -> None:
        """Learn from a finished case: its wall time against the estimate, and its measured rate."""
        estimate = self.raw_case_s(spec)
        if result is not None and result.status in ("ok", "incorrect"):
            self._seen.add(device_kind(spec))  # a GPU nvidia-smi did not list is there after all
        if result is not None and result.status == "ok":
            flops, nbytes, bound, cdtype, unit = self._work(spec)
            rate = result.gbps if unit == "gbps" else result.gflops
            w = self._workload(spec)
            if w is not None and w.self_timed and result.samples and flops:
                rate = flops / min(result.samples) / 1e9  # epochs' time: the rate of one epoch
            if rate and rate > 0 and "implausible" not in result.flags \
                    and spec.param_dict.get("timing", "gpubench") == "gpubench":
                self.learned.rates[self._learned_key(spec, cdtype)] = float(rate)
        if result is not None and result.status == "skipped":
            return  # a skip takes no measurement: it says nothing of the model
        if elapsed_s > 0 and estimate > 0:
            ratio = min(FACTOR_BOUNDS[1], max(FACTOR_BOUNDS[0], elapsed_s / estimate))
            self.learned.ratios.setdefault((spec.backend, device_kind(spec)), []).append(ratio)

    def observe_startup(self, backend: str, seconds: float, available: bool = True) -> None:
        """Learn a backend's real startup (worker start to probe answered), and whether it can run at all."""
        if seconds > 0:
            self.learned.startup[backend] = float(seconds)
        if not available:
            self.learned.unavailable.add(backend)


# --- the deadline ------------------------------------------------------------------------------------


class TimeBudget:
    """A run's time limit on ``clock``, counted from ``start`` (default: now)."""

    def __init__(self, limit_s: float, clock: Callable[[], float] = time.monotonic, start: float | None = None):
        if not limit_s > 0:
            raise ValueError(f"a time limit must be positive, got {limit_s}")
        self.limit_s = float(limit_s)
        self.clock = clock
        self.start = clock() if start is None else float(start)

    def elapsed(self) -> float:
        """Seconds since the start."""
        return self.clock() - self.start

    def left(self) -> float:
        """Seconds left before the limit (0 once it passed)."""
        return max(0.0, self.limit_s - self.elapsed())

    def fits(self, seconds: float) -> bool:
        """Whether something estimated at ``seconds`` can finish before the limit."""
        return seconds <= self.left()

    def expired(self) -> bool:
        """Whether the limit has passed."""
        return self.left() <= 0.0

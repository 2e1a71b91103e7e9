"""One case, from spec to record: prepare → verify → measure, the path every entry point shares.

``gpubench run``'s worker and the pytest plugin both drive a :class:`CasePath` (as pyperf's
worker task serves its in-process and subprocess runners alike), so a case is resolved, checked
and recorded the same way wherever it runs:

1. **prepare**: resolve the workload and normalize the parameters (``size=1024`` becomes
   ``m=n=k=1024``, so the spec, its seed and its match key are those of the suite's case); load
   the backend, resolve the device, ask whether the backend supports the case and whether it
   fits in memory (:mod:`gpubench.memfit`); enter the backend's :meth:`~gpubench.backends.base.Backend.case_scope`
   (process-global switches restored afterwards); draw the inputs from the *problem's* seed
   (:func:`problem_seed`: the workload and the parameters that change the answer, never the
   backend, device, variant or a timing mode, so every case of one problem gets the same inputs);
   get the reference from the pristine inputs (:meth:`CasePath.reference`: a randomized check
   for large products, else the float64 reference, read from the reference cache when another
   case or run computed it, :mod:`gpubench.refcache`); build the op;
2. **verify**: one timed call, its output checked against the reference. A case ends here as
   ``skipped`` (unavailable), ``error`` (an exception) or ``incorrect`` (the output failed the
   check; its one call is its only sample and it is never measured further);
3. **measure**: the harness (or a self-timed workload's own clock, or for a ``per_call_latency``
   workload one synchronized host-clock sample per call, :mod:`gpubench.latency`) takes the samples — the
   verification call counting as the first, one-time-cost warm-up call — in
   cold-cache mode (``cache = "cold"``) one call per sample, each after the backend's
   :meth:`~gpubench.backends.base.Backend.cache_flusher` — and :meth:`CasePath.finish` turns any
   :class:`~gpubench.harness.Measurement` into the record (also one taken by pytest-benchmark),
   with its flags: ``noisy``, ``launch_bound`` (:func:`gpubench.harness.launch_bound`) and
   ``implausible`` (a rate above the physical ceiling its workload names, :mod:`gpubench.plausibility`).

All along, a :class:`~gpubench.machine.CaseWatch` watches the machine: a reading when the case
starts, the measured window (opened and closed by the harness's observer hook, sampled every
0.5 s in between) and one at the end. Every record carries what it saw (``machine``), the energy
per call or why there is none (``energy``), and the flags ``busy`` and ``throttled``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import time
import traceback
from typing import Any

import numpy as np

from gpubench.errors import CaseTimeout, GpubenchError, Unavailable
from gpubench.harness import HarnessSettings, Measurement, launch_bound, measure
from gpubench.latency import measure_latency
from gpubench.machine import CaseWatch
from gpubench.ops import is_cpu_device
from gpubench.records import NOT_A_MEASUREMENT, CaseResult, CaseSpec, spec_hash
from gpubench.timing import NAIVE_TIMINGS, UNSYNCHRONIZED, measure_naive
from gpubench.workloads.base import CACHE, TIMING, TIMING_DEFAULT

#: A full reference is looked up in the reference cache when it costs at least this many FLOPs...
CACHE_MIN_FLOPS = 1e8
#: ...and stored there when it also costs at least this many FLOPs per byte it takes: reading it back
#: (and hashing it) must be cheaper than computing it (a SAXPY reference never is).
CACHE_MIN_FLOPS_PER_BYTE = 32.0


def problem_seed(workload: Any, params: dict[str, Any]) -> int:
    """Seed of a problem's random inputs: a hash of the workload and the parameters that change the answer
    (:meth:`~gpubench.workloads.base.Workload.problem_params`), so every backend, device, variant and timing
    mode of one problem — and every tool — draws the same inputs, and one reference checks them all."""
    text = json.dumps({"workload": workload.name, "params": workload.problem_params(params)},
                      sort_keys=True, separators=(",", ":"), default=str)
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def case_seed(spec: CaseSpec) -> int:
    """Seed of a case's random inputs: its problem's (:func:`problem_seed`)."""
    from gpubench.workloads import get_workload

    workload = get_workload(spec.workload)
    return problem_seed(workload, workload.normalize_params(spec.param_dict))


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip().splitlines()[0][:500]


class CasePath:
    """One case on its way from spec to :class:`~gpubench.records.CaseResult`.

    Use :func:`run_case` for the whole path; the pytest plugin calls :meth:`prepare`, times the
    op with pytest-benchmark and hands the samples to :meth:`finish`. Always :meth:`close`.
    """

    def __init__(self, spec: CaseSpec, wait_idle_s: float = 0.0):
        from gpubench.backends import get_backend
        from gpubench.workloads import get_workload

        self.t0 = time.perf_counter()
        self.watch = CaseWatch()
        """The machine around this case (see :mod:`gpubench.machine`)."""
        self.wait_idle_s = wait_idle_s
        """Seconds to wait, at most, for other work to leave the cores before the case is timed."""
        self.workload = get_workload(spec.workload)
        self.params = self.workload.normalize_params(spec.param_dict)
        self.spec = CaseSpec.make(spec.workload, spec.backend, spec.device, spec.dtype, self.params,
                                  spec.variant, spec.suite)
        self.backend = get_backend(spec.backend)
        self.sources: dict[str, str] = {f"workload:{self.workload.name}": f"v{self.workload.version}"}
        self.device = None
        self.op = None
        self.rel_error: float | None = None
        self.tolerance: float | None = None
        self.first_call_s: float | None = None
        self.flusher = None
        """The cache flusher of a cold-cache case (:class:`~gpubench.ops.CacheFlusher`), else None."""
        self.cache_metrics: dict[str, Any] = {}
        self.reference_metrics: dict[str, Any] = {}
        """``reference_s`` (seconds to compute or read the reference), ``reference_source`` (``computed``,
        ``cached`` or the randomized method, ``freivalds``) and ``check_s`` (seconds of the check)."""
        self._scope = contextlib.ExitStack()

    # --- results ---------------------------------------------------------------------------------
    def record(self, status: str, error: str = "", **fields: Any) -> CaseResult:
        """A record of this case with everything known so far (FLOPs, bytes, device, hash, check)."""
        base: dict[str, Any] = {
            "flops": self.workload.flops(self.params),
            "bytes": self.workload.bytes_moved(self.params, self.spec.dtype),
            "rel_error": self.rel_error, "tolerance": self.tolerance,
            "device_name": self.device.name if self.device is not None else "",
            "spec_hash": spec_hash(self.spec, self.sources), "wall_s": time.perf_counter() - self.t0,
            "metrics": self._metrics(),
        }
        base.update(fields)
        machine, energy, watch_flags = self.watch.state(status)
        base.setdefault("machine", machine)
        base.setdefault("energy", energy)
        base["flags"] = tuple(base.get("flags", ())) + tuple(watch_flags)
        return CaseResult(spec=self.spec, status=status, error=error, **base)

    def _metrics(self) -> dict[str, Any]:
        return {**(self.op.metrics if self.op is not None else {}), **self.cache_metrics, **self.reference_metrics}

    def _failure(self, exc: BaseException) -> CaseResult:
        if isinstance(exc, Unavailable):
            return self.record("skipped", str(exc))
        if isinstance(exc, CaseTimeout):
            return self.record("timeout", str(exc))
        if isinstance(exc, MemoryError):
            return self.record("error", "out of memory (MemoryError)")
        metrics = self._metrics()
        metrics["traceback"] = traceback.format_exc()[-4000:]
        return self.record("error", _one_line(exc), metrics=metrics)

    # --- the path ----------------------------------------------------------------------------------
    def skip_reason(self) -> str | None:
        """Load the backend and resolve the device; why the case cannot run here (the backend does not support
        it, or it does not fit in the memory free now), found before anything is drawn or allocated, or None."""
        backend = self.backend
        backend.load()
        self.device = device = backend.resolve_device(self.spec.device)
        self.watch.attach(device)
        return backend.unsupported(self.spec, self.params, device) or self._memory_shortfall()

    def prepare(self) -> CaseResult | None:
        """Build the case and verify one call; return its final record when it ends here, else None."""
        spec, params, workload, backend = self.spec, self.params, self.workload, self.backend
        try:
            reason = self.skip_reason()
            if reason:
                return self.record("skipped", reason)
            device = self.device
            self._scope.enter_context(backend.case_scope(spec, device))
            if CACHE in params:
                skipped = self._prepare_cache(params[CACHE])
                if skipped:
                    return self.record("skipped", skipped)
            seed = problem_seed(workload, params)
            inputs = workload.make_inputs(params, spec.dtype, np.random.default_rng(seed))
            # The reference comes first, from pristine inputs: an op may update its inputs in place.
            ref = self.reference(inputs, seed)
            self.op = op = workload.bind(backend.build(spec, params, inputs, device), params, spec.dtype)
            self.sources.update(op.sources)
            # Correctness first: one call on fresh inputs, checked against the float64 reference.
            # A self-timed workload's one call is its whole measured run: the machine is watched around it.
            if workload.self_timed:
                self._wait_idle()
                self.watch.window_start()
            try:
                self.first_call_s = max(float(op.timer(op.call, 1)), 1e-12)
            finally:
                if workload.self_timed:
                    self.watch.window_end(None)
            out = op.result()
            t_check = time.perf_counter()
            self.rel_error, self.tolerance = workload.check(out, ref, params, spec.dtype)
            self.reference_metrics["check_s"] = time.perf_counter() - t_check
            del out, inputs, ref
        except Exception as exc:  # any failure of the case is a result, not a crash
            return self._failure(exc)
        if not self.rel_error <= self.tolerance:
            samples = (self.first_call_s,)
            if workload.self_timed:
                # The run that failed is still worth seeing (a curve that never rose, say).
                try:
                    samples = workload.measurement(self.op, HarnessSettings()).samples
                except Exception:  # noqa: BLE001 - the record of the wrong result matters more
                    pass
            return self.record("incorrect", f"relative error {self.rel_error:.3g} exceeds tolerance "
                                            f"{self.tolerance:.3g}", samples=samples, clock=self.op.timer.name)
        return None

    def _memory_shortfall(self) -> str | None:
        """Why the case cannot fit in the memory free now (host, and the device's own), before anything is
        allocated: :mod:`gpubench.memfit`, with the cold-cache flush buffer where the case has one."""
        from gpubench.cacheflush import flush_bytes
        from gpubench.memfit import case_need, shortfall

        flush = 0
        if self.params.get(CACHE) == "cold":
            cache = self.backend.last_level_cache(self.device)
            flush = flush_bytes(cache[0]) if cache else 0
        need = case_need(self.workload, self.params, self.spec.dtype, self.device, flush)
        return shortfall(need, self.device)

    def reference(self, inputs: dict[str, np.ndarray], seed: int) -> Any:
        """What the first call's output is checked against, and how it was had (``reference_metrics``).

        A workload's randomized reference when it offers one (Freivalds' check of a large product);
        else its float64 reference — from this process's memo or the reference cache when this
        problem's reference was computed before (by another backend, dtype-equal case or run), else
        computed and kept there (:data:`CACHE_MIN_FLOPS`, :data:`CACHE_MIN_FLOPS_PER_BYTE`).
        """
        t0 = time.perf_counter()
        ref = self.workload.randomized_reference(inputs, self.params, seed)
        if ref is not None:
            source = str(getattr(ref, "method", "randomized"))
        else:
            ref, source = self._full_reference(inputs, seed)
        self.reference_metrics.update(reference_s=time.perf_counter() - t0, reference_source=source)
        return ref

    def _full_reference(self, inputs: dict[str, np.ndarray], seed: int) -> tuple[Any, str]:
        from gpubench import refcache

        workload, params = self.workload, self.params
        cost = workload.reference_cost(params)
        if not cost >= CACHE_MIN_FLOPS:
            return workload.reference(inputs, params), "computed"
        try:
            key = refcache.key_of({
                "workload": workload.name, "version": workload.version, "params": workload.problem_params(params),
                "dtype": self.spec.dtype, "seed": seed, "numpy": np.__version__,
                "sources": refcache.source_digest(workload.reference_modules()),
                "inputs": refcache.fingerprint(inputs),
            })
        except Exception as exc:  # noqa: BLE001 - a plug-in whose problem cannot be keyed is computed, not failed
            self.reference_metrics["reference_cache_error"] = f"no cache key: {_one_line(exc)}"
            return workload.reference(inputs, params), "computed"
        ref = refcache.memo_get(key)
        if ref is not None:
            return ref, "cached"
        cache = refcache.from_environment()
        if cache is not None:
            ref = cache.get(key)
            if ref is not None:
                refcache.memo_put(key, ref)
                return ref, "cached"
        ref = workload.reference(inputs, params)
        if isinstance(ref, np.ndarray):
            ref.flags.writeable = False  # shared from now on (memo, cache): a check must not change it
            refcache.memo_put(key, ref)
            if cache is not None and cost >= CACHE_MIN_FLOPS_PER_BYTE * ref.nbytes:
                cache.put(key, ref, meta={"workload": workload.name, "params": workload.problem_params(params),
                                          "dtype": self.spec.dtype})
        if cache is not None and cache.last_error:
            self.reference_metrics["reference_cache_error"] = cache.last_error
        return ref, "computed"

    def _prepare_cache(self, mode: str) -> str | None:
        """Read the device's last-level cache (recorded) and, for ``cold``, build its flusher; a skip reason or None."""
        backend, device = self.backend, self.device
        if mode == "cold":
            self.flusher = backend.cache_flusher(device)
            if self.flusher is None:
                return (f"{backend.name}: cannot flush the cache of {device.id} for cache = \"cold\" "
                        f"(run it with cache = \"hot\")")
            self.cache_metrics = self.flusher.metrics()
        else:
            cache = backend.last_level_cache(device)
            if cache is not None:
                self.cache_metrics = {"llc_bytes": int(cache[0]), "llc_source": cache[1]}
        return None

    def measure(self, settings: HarnessSettings = HarnessSettings()) -> CaseResult:
        """Take the samples (the harness, or a self-timed workload's run already made) and make the record."""
        try:
            timing = self.params.get(TIMING, TIMING_DEFAULT)
            if self.workload.self_timed:
                m = self.workload.measurement(self.op, settings)
            elif timing in NAIVE_TIMINGS:  # the lecture suite's ways 1 and 2 (gpubench.timing)
                m = measure_naive(timing, self.op.call, lambda: self.backend.synchronize(self.device))
            elif self.workload.per_call_latency:  # each call a request, timed alone (gpubench.latency)
                self._wait_idle()
                m, extra = measure_latency(self.op.call, self.op.timer, lambda: self.backend.synchronize(self.device),
                                           settings, observer=self.watch)
                self.op.metrics.update(extra)
            else:
                flush = self.flusher.flush if self.flusher is not None else None
                self._wait_idle()
                # The verification call was the first call (its one-time costs): the warm-up goes on from it.
                m = measure(self.op.call, self.op.timer, settings, flush=flush, observer=self.watch,
                            first_call_s=self.first_call_s)
        except Exception as exc:  # noqa: BLE001 - a failure while timing is the case's error
            return self._failure(exc)
        return self.finish(m)

    def _wait_idle(self) -> None:
        """Wait (up to ``wait_idle_s``) for other processes to leave the cores before the timed part."""
        if self.wait_idle_s > 0:
            self.watch.wait_idle(self.wait_idle_s)

    def finish(self, m: Measurement) -> CaseResult:
        """The ``ok`` record of a verified case from a measurement (the harness's or pytest-benchmark's).

        Flags it ``noisy`` (target not met), ``launch_bound`` (host time per call at least the
        device time), ``not_a_measurement`` (the lecture's unsynchronized clock, :mod:`gpubench.timing`)
        and ``implausible`` (its rate above a physical ceiling of the device, named in
        ``metrics["implausible"]``; the ceiling held against is ``metrics["physical_ceiling"]``).
        """
        flags = ["noisy"] if m.target_met is False else []
        if launch_bound(m, blocks_host=bool(getattr(self.op, "blocks_host", False))):
            flags.append("launch_bound")
        if m.clock == UNSYNCHRONIZED:
            flags.append(NOT_A_MEASUREMENT)
        result = self.record("ok", samples=tuple(float(s) for s in m.samples), number=m.number, clock=m.clock,
                             target_met=m.target_met, flags=tuple(flags),
                             host_samples=tuple(float(s) for s in getattr(m, "host_samples", ()) or ()))
        ceiling, verdict = self.physical_check(result)
        if ceiling is None:
            return result
        metrics = {**result.metrics, "physical_ceiling": ceiling}
        extra: tuple[str, ...] = ()
        if verdict is not None:
            metrics["implausible"] = verdict
            extra = ("implausible",)
        # result.flags already holds the machine's (busy, throttled) beside noisy and launch_bound.
        return dataclasses.replace(result, metrics=metrics, flags=result.flags + extra)

    def physical_check(self, result: CaseResult) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """``(ceiling, verdict)``: the physical ceiling this case is held against (None when none applies or is
        known) and, when its rate is above it, what broke (:func:`gpubench.plausibility.judge`)."""
        from gpubench.plausibility import BOUND_COMPUTE, BOUND_D2H, BOUND_H2D, judge, physical_ceiling

        device, params = self.device, self.params
        bound = self.workload.bound(params)
        if bound is None or device is None or result.status != "ok":
            return None, None
        try:
            link = self.backend.host_link(device) if bound in (BOUND_H2D, BOUND_D2H) else None
            ceiling = physical_ceiling(
                bound, device_name=device.name, is_cpu=is_cpu_device(device),
                compute_dtype=self.workload.compute_dtype(params, self.spec.dtype), params=params,
                bytes_moved=result.bytes, llc_bytes=result.metrics.get("llc_bytes"), link=link)
        except Exception:  # noqa: BLE001 - facts that cannot be read leave the case unchecked, not failed
            return None, None
        if ceiling is None:
            return None, None
        rate = result.gflops if bound == BOUND_COMPUTE else result.gbps
        verdict = judge(rate, ceiling)
        return dataclasses.asdict(ceiling), verdict

    def close(self) -> None:
        """Free the op's and the flusher's device memory and leave the backend's case scope (never raises)."""
        op, self.op = self.op, None
        flusher, self.flusher = self.flusher, None
        self.watch.close()
        try:
            if op is not None and op.close is not None:
                op.close()
            if flusher is not None and flusher.close is not None:
                flusher.close()
        except Exception:  # noqa: BLE001 - freeing must not mask the result
            pass
        finally:
            try:
                self._scope.close()
            except Exception:  # noqa: BLE001
                pass


def skipped_case(spec: CaseSpec) -> CaseResult | None:
    """The ``skipped`` record of a case that cannot run here (:meth:`CasePath.skip_reason`), found without
    running it; None when it would run (or its problem is one the case path itself reports)."""
    try:
        path = CasePath(spec)
    except GpubenchError:
        return None
    try:
        reason = path.skip_reason()
        return path.record("skipped", reason) if reason else None
    except Exception as exc:  # noqa: BLE001 - an unavailable backend or device is a skip; anything else runs
        return path.record("skipped", str(exc)) if isinstance(exc, Unavailable) else None
    finally:
        path.close()


def run_case(spec: CaseSpec, settings: HarnessSettings = HarnessSettings(), wait_idle_s: float = 0.0) -> CaseResult:
    """Run one case in this process: prepare, verify, measure; never raises for a problem of the case.

    An unavailable backend, device or dtype is ``skipped``; an exception is ``error``; a wrong
    output is ``incorrect`` (its one verification call is its sample; it is never a speedup).
    ``wait_idle_s``: wait up to this long for the machine to go quiet before timing (``--wait-idle``).
    """
    try:
        path = CasePath(spec, wait_idle_s)
    except GpubenchError as exc:
        return CaseResult(spec=spec, status="error", error=str(exc))
    try:
        return path.prepare() or path.measure(settings)
    finally:
        path.close()

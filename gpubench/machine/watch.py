"""The case watch: the machine sampled around one case, turned into the record's ``machine``, ``energy`` and flags.

:class:`CaseWatch` takes a reading before the case, the measured window (opened and closed by the
harness through its observer hook, with a sample every :data:`SAMPLE_INTERVAL_S` from a background
thread in between) and one after. :meth:`CaseWatch.state` turns that into the record's ``machine``
state, its ``energy`` (joules per call, or ``"not available: <reason>"``, never 0; ``approximate``
with why over a window too short for its counter) and its flags (``busy``; ``throttled`` when the GPU
lowered its clock for a reason other than its power cap: ``machine.gpu.throttled_by`` names them). Each
reading is best effort: one that cannot be taken says why.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

from gpubench.machine import contention
from gpubench.machine.contention import BUSY_CORES, MIN_WINDOW_S, CpuReading, cpu_window, current_cpu_mhz, load_average
from gpubench.machine.energy import GPU_CEILING_W, EnergyMeter, Rapl, nvml_meter, rapl_meter
from gpubench.machine.nvml import (
    POWER_CAP,
    Nvml,
    NvmlUnavailable,
    default_nvml,
    is_throttling,
    nvml_index,
    throttle_names,
    throttling_names,
)

#: Seconds between the periodic samples taken while a case is measured (a cheap background thread).
SAMPLE_INTERVAL_S = 0.5

#: At most this many periodic samples are kept per case (longer cases keep every other one, and so on).
MAX_SERIES = 240


class CaseWatch:
    """Samples the machine around one case and turns what it saw into the record's fields.

    Call order: construct (the *before* reading) → :meth:`attach` (the resolved device) →
    optionally :meth:`wait_idle` → :meth:`window_start` / :meth:`window_end` (the harness calls
    them through its observer hook; a sampler thread reads every ``interval_s`` in between) →
    :meth:`state` → :meth:`close`. ``nvml``, ``rapl``, ``clock`` and ``sleep`` are injectable for tests.
    """

    def __init__(self, *, interval_s: float = SAMPLE_INTERVAL_S, nvml: Callable[[], Nvml] | None = None,
                 rapl: Rapl | None = None, busy_cores: float = BUSY_CORES,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        self.interval_s = interval_s
        self.clock = clock
        self.sleep = sleep
        self.busy_cores = busy_cores
        self._nvml_factory = nvml or default_nvml
        self._rapl = rapl
        self.errors: list[str] = []
        self.since = contention.descendant_pids()
        """The descendants there when the case began: those it starts (loader workers, ranks) are its own work."""
        self.cpu_before = self._safe(self._read_cpu)
        self.load_before = load_average()
        self.mhz_before = current_cpu_mhz()
        self.is_cpu = True
        self.device_id = ""
        self.nvml: Nvml | None = None
        self.gpu_handle: Any = None
        self.gpu_index: int | str | None = None
        self.gpu_reason = "not a GPU case"
        self.gpu_before: dict[str, Any] | None = None
        self.gpu_name: str | None = None
        self.waited: dict[str, Any] | None = None
        self.device_meter: EnergyMeter | None = None
        self.device_meter_reason = ""
        self.host_meter: EnergyMeter | None = None
        self.host_meter_reason = ""
        self.window: dict[str, Any] | None = None
        self._win_cpu: CpuReading | None = None
        self._win_t0 = 0.0
        self._last_tick: CpuReading | None = None
        self._series: list[dict[str, Any]] = []
        self._gpu_samples: list[dict[str, Any]] = []
        self._stop: threading.Event | None = None
        self._thread: threading.Thread | None = None

    def _read_cpu(self):
        """:func:`~gpubench.machine.contention.read_cpu`, counting the processes the case started as its own."""
        return contention.read_cpu(self.since)

    def _safe(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception as exc:  # noqa: BLE001 - watching the machine never fails a case
            self.errors.append(f"{getattr(fn, '__name__', 'reading')}: {type(exc).__name__}: {exc}")
            return None

    # --- setup ----------------------------------------------------------------------------------------
    def attach(self, device: Any) -> None:
        """Note the case's resolved device: a CPU case is metered by RAPL, an NVIDIA GPU case by NVML."""
        from gpubench.ops import is_cpu_device

        self.device_id = str(getattr(device, "id", "") or "")
        self.is_cpu = is_cpu_device(device)
        if self._rapl is None:
            self._rapl = self._safe(Rapl) or None
        rapl_reason = (self._rapl.reason if self._rapl is not None else "reading the powercap tree failed") \
            or "no RAPL zone"
        if self.is_cpu:
            self.gpu_reason = "a CPU case"
            if self._rapl is not None and self._rapl.available:
                self.device_meter = rapl_meter(self._rapl)
            else:
                self.device_meter_reason = f"not available: {rapl_reason}"
            return
        if self._rapl is not None and self._rapl.available:
            self.host_meter = rapl_meter(self._rapl)
        else:
            self.host_meter_reason = f"not available: {rapl_reason}"
        index = nvml_index(self.device_id)
        if index is None and "NVIDIA" in str(getattr(device, "name", "")).upper():
            index = 0 if self._nvml_count() == 1 else None
        if index is None:
            self.gpu_reason = f"{self.device_id or 'this device'} is not a CUDA device NVML can name"
            self.device_meter_reason = f"not available: {self.gpu_reason}"
            return
        try:
            self.nvml = self._nvml_factory()
            self.gpu_handle = self.nvml.handle(index)
        except NvmlUnavailable as exc:
            self.nvml, self.gpu_reason = None, str(exc)
            self.device_meter_reason = f"not available: {exc}"
            return
        self.gpu_index = index
        self.gpu_reason = ""
        self.gpu_name = self.nvml.name(self.gpu_handle)
        self.gpu_before = self._safe(self.nvml.sample, self.gpu_handle)
        nvml, h = self.nvml, self.gpu_handle
        limit = (self.gpu_before or {}).get("power_limit_w")
        ceiling = max(2.0 * limit, 100.0) if limit else GPU_CEILING_W
        try:
            nvml.energy_mj(h)
        except Exception as exc:  # noqa: BLE001
            self.device_meter_reason = f"not available: NVML's total-energy counter: {exc}"
        else:
            self.device_meter = nvml_meter(lambda: {"gpu": nvml.energy_mj(h)}, index, ceiling)

    def _nvml_count(self) -> int:
        try:
            return self._nvml_factory().count
        except NvmlUnavailable:
            return 0

    def wait_idle(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` seconds for other work to leave the cores (recorded in the state)."""
        if timeout_s and timeout_s > 0:
            self.waited = self._safe(contention.wait_idle, timeout_s, min(0.5, timeout_s), self.busy_cores)

    # --- the measured window (the harness's observer hook) ---------------------------------------------
    def window_start(self) -> None:
        """The sampling window opens: read every counter, start the periodic sampler."""
        self._win_cpu = self._last_tick = self._safe(self._read_cpu)
        self._win_t0 = self.clock()
        for meter in (self.device_meter, self.host_meter):
            if meter is not None:
                meter.start()
        self._gpu_samples = []
        self._sample_gpu()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run_sampler, name="gpubench-machine-sampler", daemon=True)
        self._thread.start()

    def window_end(self, calls: int | None, not_per_call: str = "") -> None:
        """The sampling window closes after ``calls`` calls (None: not counted in calls — a self-timed run,
        or ``not_per_call`` says why).

        Energy is read at once (it divides by exactly these calls); CPU contention is judged over at
        least :data:`MIN_WINDOW_S`, watching on, idle, after a shorter window.
        """
        if self._stop is not None:
            self._stop.set()
        t1 = self.clock()
        for meter in (self.device_meter, self.host_meter):
            if meter is not None:
                meter.finish()  # read now; a sampler step still under way adds nothing after this
        self._stop_sampler()
        self._sample_gpu()
        window_s = t1 - self._win_t0
        if window_s < MIN_WINDOW_S:
            self.sleep(MIN_WINDOW_S - window_s)
        end = self._safe(self._read_cpu)
        self.window = {"window_s": round(window_s, 4), "calls": calls}
        if self._win_cpu is not None and end is not None:
            self.window["cpu"] = cpu_window(self._win_cpu, end)
        self.window["device_energy"] = (self.device_meter.entry(window_s, calls, not_per_call) if self.device_meter
                                        else {"reason": self.device_meter_reason or "not available"})
        if not self.is_cpu:
            self.window["host_energy"] = (self.host_meter.entry(window_s, calls, not_per_call) if self.host_meter
                                          else {"reason": self.host_meter_reason or "not available"})

    def _run_sampler(self) -> None:
        assert self._stop is not None
        while not self._stop.wait(self.interval_s):
            try:
                self._tick()
            except Exception as exc:  # noqa: BLE001 - the sampler must never take the case down
                self.errors.append(f"sampler: {type(exc).__name__}: {exc}")

    def _tick(self) -> None:
        point: dict[str, Any] = {"t": round(self.clock() - self._win_t0, 3)}
        now = self._read_cpu()
        if now is not None and self._last_tick is not None:
            point["other_cores"] = cpu_window(self._last_tick, now)["other_cores"]
        self._last_tick = now
        for meter in (self.device_meter, self.host_meter):
            if meter is not None:
                meter.update()
        g = self._sample_gpu()
        if g:
            point.update({k: g[k] for k in ("sm_mhz", "power_w", "temp_c", "throttle") if g.get(k) is not None})
        self._series.append(point)
        if len(self._series) > MAX_SERIES:
            self._series = self._series[::2]  # a long case keeps every other sample

    def _sample_gpu(self) -> dict[str, Any] | None:
        if self.nvml is None:
            return None
        g = self._safe(self.nvml.sample, self.gpu_handle)
        if g is not None:
            self._gpu_samples.append(g)
        return g

    def _stop_sampler(self) -> None:
        if self._stop is not None:
            self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._stop = self._thread = None

    def close(self) -> None:
        """Stop the sampler thread if a window was left open (an exception while timing)."""
        self._stop_sampler()

    # --- the outcome ----------------------------------------------------------------------------------
    def _cpu_state(self) -> dict[str, Any]:
        cpu: dict[str, Any] = {"busy_threshold_cores": self.busy_cores}
        end = self._safe(self._read_cpu)
        if self.cpu_before is None or end is None:
            cpu["reason"] = ("psutil not installed (pip install psutil)" if contention.psutil_module() is None
                             else "CPU times unreadable")
            return cpu
        whole = cpu_window(self.cpu_before, end)
        cpu["cores"] = self.cpu_before.cores
        win = (self.window or {}).get("cpu")
        cpu.update(win or whole)
        cpu["span"] = "window" if win else "case"
        cpu["case_other_cores"] = whole["other_cores"]
        peaks = [p["other_cores"] for p in self._series if "other_cores" in p]
        if peaks:
            cpu["other_cores_peak"] = max(peaks)
        cpu["load_before"] = self.load_before
        cpu["load_after"] = load_average()
        cpu["mhz_before"] = self.mhz_before
        cpu["mhz_after"] = current_cpu_mhz()
        return cpu

    def _gpu_state(self) -> dict[str, Any]:
        if self.nvml is None:
            return {"reason": self.gpu_reason}
        samples = self._gpu_samples
        gpu: dict[str, Any] = {"index": self.gpu_index, "name": self.gpu_name, "before": self.gpu_before,
                               "after": self._safe(self.nvml.sample, self.gpu_handle)}

        def values(key: str) -> list[float]:
            return [s[key] for s in samples if s.get(key) is not None]

        for key in ("sm_mhz", "mem_mhz", "power_w", "temp_c"):
            v = values(key)
            if v:
                gpu[f"{key}_min"], gpu[f"{key}_max"] = min(v), max(v)
        limits = values("power_limit_w")
        if limits:
            gpu["power_limit_w"] = min(limits)
        masks = values("throttle")
        if masks:
            mask = 0
            for m in masks:
                mask |= int(m)
            gpu["throttle_mask"] = mask
            gpu["throttle"] = throttle_names(mask)
            if mask & POWER_CAP:
                gpu["power_capped"] = True  # the normal state under load: recorded, not flagged
            if is_throttling(mask):
                gpu["throttled_by"] = throttling_names(mask)
        pids = self._safe(self.nvml.processes, self.gpu_handle)
        if pids is not None:
            own = os.getpid()
            if own in pids:
                gpu["other_processes"] = [p for p in pids if p != own]
            else:
                # NVML lists PIDs of the host's namespace: inside a container this process is not among them.
                gpu["processes_seen"] = pids
                gpu["other_processes_note"] = "this process is not in NVML's list (another PID namespace?)"
        return gpu

    def state(self, status: str = "ok") -> tuple[dict[str, Any], dict[str, Any], list[str]]:
        """``(machine, energy, flags)`` for the record of this case, ending with ``status``."""
        machine: dict[str, Any] = {"cpu": self._cpu_state(), "gpu": self._gpu_state()}
        if self.window:
            machine["window_s"] = self.window["window_s"]
            if self.window.get("calls") is not None:
                machine["calls"] = self.window["calls"]
        if self._series:
            machine["series"] = list(self._series)
        if self.waited is not None:
            machine["waited"] = self.waited
        if self.errors:
            machine["errors"] = self.errors[:5]
        if self.window is None:
            energy: dict[str, Any] = {"reason": f"not measured: the case ended as {status} before a measured window"
                                      if status != "ok" else "not measured: no measured window"}
        else:
            energy = dict(self.window["device_energy"])
            if "host_energy" in self.window:
                energy["host"] = self.window["host_energy"]
        flags = []
        cpu = machine["cpu"]
        if self.window is not None and cpu.get("other_cores") is not None and cpu["other_cores"] > self.busy_cores:
            flags.append("busy")
        if is_throttling(machine["gpu"].get("throttle_mask")):
            flags.append("throttled")
        return machine, energy, flags

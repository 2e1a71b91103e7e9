"""Energy counters: the CPU packages' RAPL counters, and a meter that sums any cumulative counter over a window.

* :class:`Rapl` (Linux powercap sysfs, ``/sys/class/powercap/*rapl*``, Intel and AMD): the CPU
  packages' energy counters.
* :class:`EnergyMeter`: the increments of a cumulative counter (RAPL's µJ, NVML's total-energy mJ)
  over a window, wrap-around corrected step by step, as a record entry (joules per call, or
  ``"not available: <reason>"``, never 0).

Why not Zeus (``zeus`` 0.16 on PyPI, which wraps NVML, AMD SMI and RAPL)? Evaluated and not
chosen, on dependency weight and correctness:

* weight: ``pip install zeus`` pulls 30 distributions (scikit-learn, SciPy, pandas, pydantic,
  amdsmi, httpx, rich, tyro, ...), for what here is one module over two small libraries
  (psutil, nvidia-ml-py) that gpubench needs anyway;
* RAPL: it looks only under ``/sys/class/powercap/intel-rapl`` and tracks wrap-around in a
  separate spawned *process* per counter that polls every 0.1–1 s, a process that would itself
  compete for the cores of the machine being measured; and it adds the poller's wrap count to
  each raw read, so a read that falls between a wrap and the poller noticing it comes out one
  full counter range low. Here the case's own sampler thread reads the counters every 0.5 s
  while measuring (far below the shortest wrap period, minutes at full power) and corrects each
  step's delta on its own;
* NVML: equivalent (the same ``nvmlDeviceGetTotalEnergyConsumption`` counter, 64-bit mJ).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gpubench.machine import sysfs

#: Average power above which an energy reading is a measurement error, not a result (W).
#: A GPU board: twice its power limit when known (the largest boards draw about 1.2 kW);
#: a CPU package: 1 kW each.
GPU_CEILING_W = 2500.0
CPU_PACKAGE_CEILING_W = 1000.0

POWERCAP_ROOT = "/sys/class/powercap"

#: NVML's energy over a window shorter than this (seconds) is marked approximate: the power sensor of an
#: A100 or H100 samples only part of each ~100 ms period, so a short window's joules can be off by tens of
#: percent; over about 2 s the sampled share averages out.
NVML_MIN_WINDOW_S = 2.0


class Rapl:
    """The CPU packages' RAPL energy counters in the powercap sysfs (Intel ``intel-rapl``; AMD Zen exposes
    the same driver and zone names).

    Only top-level ``package-N`` zones are summed (their subzones, ``core`` and ``uncore``, are
    inside them; ``psys`` would count the package twice). ``reason`` says why there are none, or
    why they cannot be read (``energy_uj`` is root-only since Linux 5.10's fix for the Platypus
    attack).
    """

    ZONE = re.compile(r"[a-z0-9_-]*rapl:\d+")

    def __init__(self, root: str | Path = POWERCAP_ROOT):
        self.root = Path(root)
        self.zones: dict[str, Path] = {}
        """Zone name (``package-0``) → its ``energy_uj`` file."""
        self.ranges: dict[str, int | None] = {}
        """Zone name → ``max_energy_range_uj`` (the counter wraps to 0 past it; None when unknown)."""
        self.reason = ""
        self._discover()

    def _discover(self) -> None:
        if not self.root.is_dir():
            self.reason = f"no RAPL: {self.root} is absent (no powercap driver: a VM, a container, or not Linux)"
            return
        found: dict[str, Path] = {}
        for d in sorted(self.root.iterdir()):
            if not self.ZONE.fullmatch(d.name) or "mmio" in d.name:  # the MMIO interface repeats a package
                continue
            try:
                name = sysfs.read_text(d / "name")
            except OSError:
                continue
            if name.startswith("package") and name not in found:
                found[name] = d
        if not found:
            self.reason = f"no RAPL package zone under {self.root}"
            return
        for name, d in found.items():
            energy = d / "energy_uj"
            try:
                int(sysfs.read_text(energy))
            except PermissionError:
                self.reason = (f"{energy} is not readable by this user (root only since Linux 5.10, the Platypus "
                               "fix): run as root or grant read access")
                self.zones.clear()
                return
            except (OSError, ValueError) as exc:
                self.reason = f"{energy}: {getattr(exc, 'strerror', None) or exc}"
                self.zones.clear()
                return
            self.zones[name] = energy
            try:
                self.ranges[name] = int(sysfs.read_text(d / "max_energy_range_uj"))
            except (OSError, ValueError):
                self.ranges[name] = None

    @property
    def available(self) -> bool:
        """Whether every package zone can be read."""
        return bool(self.zones) and not self.reason

    def read(self) -> dict[str, int]:
        """Raw counters in µJ by zone (raises OSError when a read fails)."""
        return {name: int(sysfs.read_text(path)) for name, path in self.zones.items()}


class EnergyMeter:
    """Sums a cumulative energy counter's increments over a window, step by step.

    ``read`` returns raw counter values by name; ``ranges`` gives each one's wrap-around range
    (the value past which it restarts at 0; None: it never wraps, and going backwards is an
    error). Every :meth:`update` adds the increment since the previous read, so a counter that
    wraps between two reads is corrected as long as reads are closer than one wrap period. A window
    shorter than ``min_window_s`` still gives its joules, marked ``approximate`` with why.
    """

    def __init__(self, source: str, read: Callable[[], dict[str, int]], ranges: dict[str, int | None],
                 joules_per_unit: float, ceiling_w: float, min_window_s: float = 0.0, short_window: str = ""):
        self.source = source
        self.min_window_s = min_window_s
        """A window shorter than this gives an ``approximate`` entry (0: any window is exact enough)."""
        self.short_window = short_window
        """Why a short window is approximate (the ``approximate`` text names the window and this)."""
        self._read = read
        self.ranges = ranges
        self.joules_per_unit = joules_per_unit
        self.ceiling_w = ceiling_w
        self.error = ""
        self.joules = 0.0
        self.wraps = 0
        self._last: dict[str, int] | None = None
        self._done = False
        self._lock = threading.RLock()

    def start(self) -> None:
        """Begin a window at the counter's present value."""
        with self._lock:
            self.joules, self.wraps, self.error, self._done = 0.0, 0, "", False
            try:
                self._last = self._read()
            except Exception as exc:  # noqa: BLE001 - a counter that cannot be read is a reason, not a crash
                self._last, self.error = None, f"reading the {self.source} counter failed: {exc}"

    def finish(self) -> None:
        """The window's last read: add its increment, then ignore further updates until :meth:`start`."""
        with self._lock:
            self.update()
            self._done = True

    def update(self) -> None:
        """Add the increment since the previous read (wrap-around corrected)."""
        with self._lock:
            if self._last is None or self.error or self._done:
                return
            try:
                now = self._read()
            except Exception as exc:  # noqa: BLE001
                self.error = f"reading the {self.source} counter failed: {exc}"
                return
            total = 0
            for name, value in now.items():
                prev = self._last.get(name)
                if prev is None:
                    continue
                delta = value - prev
                if delta < 0:
                    span = self.ranges.get(name)
                    if not span or prev > span:
                        self.error = f"the {self.source} counter {name} went backwards ({prev} → {value}): reset?"
                        return
                    delta = span - prev + value
                    self.wraps += 1
                total += delta
            self.joules += total * self.joules_per_unit
            self._last = now

    def entry(self, window_s: float, calls: int | None, not_per_call: str = "") -> dict[str, Any]:
        """The energy of the window as a record entry: joules per call, or why there is none
        (``calls`` None: ``not_per_call``, by default a self-timed run)."""
        if self.error:
            return {"reason": f"not available: {self.error}"}
        j = self.joules
        if not j > 0:
            return {"reason": f"not available: the {self.source} counter did not advance in the {window_s:.2g} s "
                              "window (it updates more slowly than that)"}
        watts = j / max(window_s, 1e-9)
        if watts > self.ceiling_w:
            return {"reason": f"implausible: {watts:.0f} W average from the {self.source} counter is above the "
                              f"{self.ceiling_w:.0f} W ceiling; not used"}
        out: dict[str, Any] = {"joules": j, "window_s": round(window_s, 6), "watts": round(watts, 3),
                               "source": self.source}
        if self.wraps:
            out["wraps"] = self.wraps
        if window_s < self.min_window_s:
            out["approximate"] = (f"a {window_s:.2g} s window, under the {self.min_window_s:g} s that "
                                  f"{self.source} needs: {self.short_window}")
        if calls is None:
            why = not_per_call or "a self-timed run (its own clock)"
            out["reason"] = (f"not per call: {why}; the window used {j:.4g} J in {window_s:.3g} s "
                             f"({watts:.3g} W average)")
            return out
        out["joules_per_call"] = j / calls
        out["calls"] = calls
        return out


def nvml_meter(read: Callable[[], dict[str, int]], index: int | str, ceiling_w: float) -> EnergyMeter:
    """An :class:`EnergyMeter` over NVML's total-energy counter (mJ) of GPU ``index``; windows under
    :data:`NVML_MIN_WINDOW_S` are approximate."""
    return EnergyMeter(f"nvml:{index}", read, {"gpu": None}, 1e-3, ceiling_w, NVML_MIN_WINDOW_S,
                       "the GPU's power sensor samples only part of each ~100 ms period (A100, H100)")


def rapl_meter(rapl: Rapl) -> EnergyMeter:
    """An :class:`EnergyMeter` over the RAPL package zones (µJ)."""
    return EnergyMeter("rapl", rapl.read, dict(rapl.ranges), 1e-6, CPU_PACKAGE_CEILING_W * max(len(rapl.zones), 1))


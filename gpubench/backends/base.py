"""The backend adapter contract, shared by built-in backends and third-party plug-ins.

An adapter owns device placement, synchronization, its clock and the op implementations. It
declares, without importing its framework, the device kinds it can drive (``device_kinds``)
and the workloads it implements; everything that needs the framework (``load``, ``devices``,
``build``) is called only inside the worker process that runs its cases.

Op implementations live in modules ``<ops_package>.<workload>`` exposing
``build(backend, spec, params, inputs, device) -> BoundOp`` and optionally ``VARIANTS``
(a tuple of implementation names, the first being the default) and
``unsupported(backend, spec, params, device) -> str | None``. A plug-in may instead override
:meth:`Backend.workloads`, :meth:`Backend.variants` and :meth:`Backend.build` directly.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gpubench.errors import Unavailable
from gpubench.harness import HostTimer, Timer
from gpubench.records import CaseSpec


@dataclass(frozen=True)
class DeviceInfo:
    """A concrete device: ``id`` as used on the command line (``cpu``, ``cuda:0``, ``opencl:0:1``)."""

    id: str
    name: str
    kind: str
    memory_bytes: int | None = None
    dtypes: tuple[str, ...] = ("float64", "float32")
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class BoundOp:
    """One case made ready to run: inputs on the device, output buffer allocated.

    ``call`` runs the operation once (it may return before the device finishes); ``timer``
    times it correctly for the device; ``result`` synchronizes and returns the output as a
    host NumPy array; ``close`` frees device memory.
    """

    call: Callable[[], object]
    result: Callable[[], np.ndarray]
    timer: Timer = field(default_factory=HostTimer)
    close: Callable[[], None] | None = None
    sources: dict[str, str] = field(default_factory=dict)
    """Kernel source texts this op runs (hashed into the record so changed kernels are not compared)."""
    metrics: dict[str, Any] = field(default_factory=dict)
    """Extra per-case measurements (for example an MNIST accuracy curve)."""
    device_inputs: dict[str, Any] = field(default_factory=dict)
    """Device arrays the op reads, by input name, that ``include_transfer`` refills from host memory."""
    device_output: Any = None
    """Device array the op writes (or a function returning the latest one, for ops that allocate
    their output), that ``include_transfer`` copies back to host memory."""


class Backend:
    """Base class of every backend adapter.

    Subclasses set ``name``, ``device_kinds``, ``extra`` and ``ops_package`` and implement
    :meth:`load` and :meth:`devices`.
    """

    name: str = ""
    #: Device kinds this backend can drive, declared statically (``cpu``, ``cuda``, ``opencl``).
    device_kinds: tuple[str, ...] = ("cpu",)
    #: The pip extra that installs the framework, named in "not installed" messages.
    extra: str = ""
    #: Package holding one module per implemented workload.
    ops_package: str = ""
    description: str = ""

    # --- static declarations (no framework import) ------------------------------------------
    def workloads(self) -> tuple[str, ...]:
        """Workloads this backend implements (from the op modules present)."""
        from gpubench.workloads import WORKLOADS

        return tuple(w for w in WORKLOADS if self._ops_module_exists(w))

    def variants(self, workload: str) -> tuple[str, ...]:
        """Implementation variants of ``workload``; the first is the default."""
        module = self._ops_module(workload)
        return tuple(getattr(module, "VARIANTS", ("default",)))

    def _ops_module_exists(self, workload: str) -> bool:
        if not self.ops_package:
            return False
        try:
            return importlib.util.find_spec(f"{self.ops_package}.{workload}") is not None
        except ModuleNotFoundError:
            return False

    def _ops_module(self, workload: str):
        if not self._ops_module_exists(workload):
            raise Unavailable(f"{self.name}: workload {workload!r} is not implemented")
        return importlib.import_module(f"{self.ops_package}.{workload}")

    # --- run time (inside the worker) ---------------------------------------------------------
    def load(self) -> None:
        """Import the framework; raise :class:`Unavailable` with a one-line reason when it cannot run."""

    def devices(self) -> list[DeviceInfo]:
        """Concrete devices available now (may be empty)."""
        raise NotImplementedError

    def availability(self) -> str | None:
        """``None`` when the backend can run here, else the one-line reason it cannot."""
        try:
            self.load()
            if not self.devices():
                return f"{self.name}: no device found"
        except Unavailable as exc:
            return str(exc)
        return None

    def resolve_device(self, wanted: str) -> DeviceInfo:
        """Map a device argument (``cpu``, ``cuda``, ``cuda:1``, ``opencl:0:0``, or a name fragment) to a device."""
        devices = self.devices()
        kind = wanted.split(":")[0]
        exact = [d for d in devices if d.id == wanted]
        if exact:
            return exact[0]
        of_kind = [d for d in devices if d.kind == kind]
        if wanted == kind and of_kind:
            return of_kind[0]
        # A name fragment, bare ("epyc") or after the kind ("opencl:nvidia"); never a number ("cuda:1").
        fragment, candidates = wanted, devices
        if ":" in wanted and kind in self.device_kinds:
            fragment, candidates = wanted.split(":", 1)[1], of_kind
        by_name = [d for d in candidates
                   if not fragment.replace(":", "").isdigit() and fragment.lower() in d.name.lower()]
        if by_name:
            return by_name[0]
        if wanted == kind:
            raise Unavailable(f"{self.name}: no {kind} device found")
        raise Unavailable(f"{self.name}: no device {wanted!r} (have: {', '.join(d.id for d in devices) or 'none'})")

    def unsupported(self, spec: CaseSpec, params: dict[str, Any], device: DeviceInfo) -> str | None:
        """Reason this backend cannot run ``spec`` on ``device`` (a skip), or None."""
        if spec.dtype not in device.dtypes:
            return f"{self.name}: dtype {spec.dtype} not supported on {device.id}"
        if params.get("tf32") and device.kind != "cuda":
            return f"{self.name}: tf32 applies to CUDA devices only"
        module = self._ops_module(spec.workload)
        check = getattr(module, "unsupported", None)
        return check(self, spec, params, device) if check else None

    def build(self, spec: CaseSpec, params: dict[str, Any], inputs: dict[str, np.ndarray],
              device: DeviceInfo) -> BoundOp:
        """Put ``inputs`` on ``device`` and return the ready-to-run operation."""
        op = self._ops_module(spec.workload).build(self, spec, params, inputs, device)
        if params.get("include_transfer"):
            from gpubench.backends.transfer_wrap import end_to_end

            op = end_to_end(self, spec, op, inputs, device)
        return op

    # --- data movement (used by ops, include_transfer and the transfer workload) --------------
    def upload(self, array: np.ndarray, device: DeviceInfo, dtype: str | None = None) -> Any:
        """Copy a host array onto ``device`` (converted to gpubench dtype ``dtype`` when given)."""
        return array.copy() if dtype is None else array.astype(dtype_storage(dtype), copy=True)

    def download(self, handle: Any) -> np.ndarray:
        """Synchronize and return a device array as a host NumPy array."""
        return np.asarray(handle).copy()

    def copy_in(self, handle: Any, array: np.ndarray, device: DeviceInfo) -> None:
        """Copy a host array into an existing device array of the same shape (dtype converted)."""
        np.copyto(handle, array, casting="unsafe")

    def copy_out(self, handle: Any, array: np.ndarray, device: DeviceInfo) -> None:
        """Copy a device array into an existing host array, returning once the data is in host memory."""
        np.copyto(array, handle, casting="unsafe")

    def synchronize(self, device: DeviceInfo) -> None:
        """Wait until all work queued on ``device`` has finished (no-op for synchronous CPU backends)."""

    def timer(self, device: DeviceInfo) -> Timer:
        """The right clock for ``device``: device events where they exist, else a synchronized host clock."""
        return HostTimer(lambda: self.synchronize(device))

    def environment(self) -> dict[str, Any]:
        """Framework versions and device facts for the run's environment record."""
        return {}


def dtype_storage(dtype: str) -> np.dtype:
    """NumPy storage dtype of a gpubench dtype on the host (bfloat16 values live in float32)."""
    return np.dtype(np.float32) if dtype == "bfloat16" else np.dtype(dtype)

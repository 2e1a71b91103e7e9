"""The backend adapter contract, shared by built-in backends and third-party plug-ins.

An adapter owns device placement, synchronization, its clock and the op implementations. It
declares, without importing its framework, the device kinds it can drive (``device_kinds``)
and the workloads it implements; everything that needs the framework (``load``, ``devices``,
``build``) is called only inside the worker process that runs its cases.

Op implementations live in modules ``<ops_package>.<workload>`` exposing
``build(backend, spec, params, inputs, device) -> BoundOp`` and optionally ``VARIANTS``
(a tuple of implementation names, the first being the default) and
``unsupported(backend, spec, params, device) -> str | None``, and ``VARIANT_DEVICE_KINDS`` (variant
name → the device kinds it can run on, for a variant narrower than its backend, such as a CUDA
graph: suites expand it only on those kinds, and asked for elsewhere it is a skip with a reason).
A workload plug-in may also bring
op modules for existing backends: its :attr:`Workload.ops <gpubench.workloads.base.Workload.ops>`
maps a backend name to such a module, used where the backend has none of its own. A plug-in
may instead override :meth:`Backend.workloads`, :meth:`Backend.variants` and
:meth:`Backend.build` directly.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
from collections.abc import Iterator
from typing import Any

import numpy as np

from gpubench.errors import Unavailable
from gpubench.harness import HostTimer, Timer
from gpubench.ops import BoundOp, CacheFlusher, DeviceInfo
from gpubench.records import CaseSpec

__all__ = ["Backend", "BoundOp", "DeviceInfo", "dtype_storage"]


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
        from gpubench.workloads import workload_names

        return tuple(w for w in workload_names() if self._ops_module_exists(w))

    def variants(self, workload: str) -> tuple[str, ...]:
        """Implementation variants of ``workload``; the first is the default."""
        module = self._ops_module(workload)
        return tuple(getattr(module, "VARIANTS", ("default",)))

    def variant_device_kinds(self, workload: str, variant: str) -> tuple[str, ...]:
        """Device kinds ``variant`` of ``workload`` runs on: all the backend drives, unless its op module narrows it."""
        module = self._ops_module(workload)
        return tuple(getattr(module, "VARIANT_DEVICE_KINDS", {}).get(variant, self.device_kinds))

    def _ops_module_name(self, workload: str) -> str | None:
        """The op module of ``workload`` for this backend: its own, else one the workload brings."""
        from gpubench.workloads import find_workload

        candidates = [f"{self.ops_package}.{workload}"] if self.ops_package else []
        found = find_workload(workload)
        if found is not None and self.name in found.ops:
            candidates.append(found.ops[self.name])
        for name in candidates:
            try:
                if importlib.util.find_spec(name) is not None:
                    return name
            except ModuleNotFoundError:
                continue
        return None

    def _ops_module_exists(self, workload: str) -> bool:
        return self._ops_module_name(workload) is not None

    def _ops_module(self, workload: str):
        name = self._ops_module_name(workload)
        if name is None:
            raise Unavailable(f"{self.name}: workload {workload!r} is not implemented")
        return importlib.import_module(name)

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
        kinds = self.variant_device_kinds(spec.workload, spec.variant)
        if device.kind not in kinds:
            return (f"{self.name}: variant {spec.variant!r} of {spec.workload} runs on {' or '.join(kinds)} "
                    f"devices only, not on {device.id}")
        module = self._ops_module(spec.workload)
        check = getattr(module, "unsupported", None)
        return check(self, spec, params, device) if check else None

    @contextlib.contextmanager
    def case_scope(self, spec: CaseSpec, device: DeviceInfo) -> Iterator[None]:
        """Context around one case (build, check and measurement): restore process-global state after it.

        Frameworks keep some switches per process (TF32 in torch, CuPy and TensorFlow; cuDNN's
        autotuner; the current CUDA device): a case that sets one must not leak it into the next
        case of the same worker or pytest session. Backends with such switches save them on entry,
        make ``device`` current where the framework has a notion of it, and restore both on exit.
        """
        yield

    def build(self, spec: CaseSpec, params: dict[str, Any], inputs: dict[str, np.ndarray],
              device: DeviceInfo) -> BoundOp:
        """Put ``inputs`` on ``device`` and return the ready-to-run operation."""
        op = self._ops_module(spec.workload).build(self, spec, params, inputs, device)
        if params.get("include_transfer"):
            from gpubench.backends.transfer_wrap import end_to_end

            op = end_to_end(self, spec, op, inputs, device, has_copies=type(self).copy_in is not Backend.copy_in)
        return op

    # --- data movement (used by ops, include_transfer and the transfer workload) --------------
    def upload(self, array: np.ndarray, device: DeviceInfo, dtype: str | None = None) -> Any:
        """Copy a host array onto ``device`` (converted to gpubench dtype ``dtype`` when given)."""
        return array.copy() if dtype is None else array.astype(dtype_storage(dtype), copy=True)

    def download(self, handle: Any) -> np.ndarray:
        """Synchronize and return a device array as a host NumPy array."""
        return np.asarray(handle).copy()

    # ``include_transfer`` times copies only: every dtype conversion happens outside the timed calls.
    # ``host_input`` converts a host input to the device array's dtype once, before timing;
    # ``copy_in`` then copies it as is. ``host_output`` allocates a host buffer of the device
    # array's dtype once; ``copy_out`` copies into it as is, and ``host_array`` converts it for the
    # check after the timing.
    def host_input(self, handle: Any, array: np.ndarray, device: DeviceInfo) -> Any:
        """A host copy of ``array`` in the dtype of device array ``handle``: what :meth:`copy_in` copies."""
        return np.ascontiguousarray(array, dtype=handle.dtype).copy()

    def host_output(self, handle: Any, device: DeviceInfo) -> Any:
        """A host buffer of the shape and dtype of device array ``handle``: where :meth:`copy_out` copies to."""
        return np.empty(handle.shape, handle.dtype)

    def host_array(self, host: Any) -> np.ndarray:
        """A :meth:`host_output` buffer as a NumPy array for the check (widened where NumPy lacks the dtype)."""
        return np.array(host, copy=True)

    def nbytes(self, handle: Any) -> int:
        """Bytes of a device or host array."""
        return int(handle.nbytes)

    def copy_in(self, handle: Any, host: Any, device: DeviceInfo) -> None:
        """Copy ``host`` (from :meth:`host_input`: same dtype) into the existing device array ``handle``."""
        np.copyto(handle, host)

    def copy_out(self, handle: Any, host: Any, device: DeviceInfo) -> None:
        """Copy device array ``handle`` into ``host`` (from :meth:`host_output`), returning once the data is there."""
        np.copyto(host, handle)

    def synchronize(self, device: DeviceInfo) -> None:
        """Wait until all work queued on ``device`` has finished (no-op for synchronous CPU backends)."""

    def timer(self, device: DeviceInfo) -> Timer:
        """The right clock for ``device``: device events where they exist, else a synchronized host clock."""
        return HostTimer(lambda: self.synchronize(device))

    def environment(self) -> dict[str, Any]:
        """Framework versions and device facts for the run's environment record."""
        return {}

    # --- cold cache and physical facts (gpubench.cacheflush, gpubench.plausibility) -------------
    def last_level_cache(self, device: DeviceInfo) -> tuple[int, str] | None:
        """The device's last-level cache as ``(bytes, where it was read)``; the host's for a CPU device."""
        if device.kind == "cpu":
            from gpubench.cacheflush import host_cache_bytes

            return host_cache_bytes()
        return None

    def cache_flusher(self, device: DeviceInfo) -> CacheFlusher | None:
        """What cold-cache mode runs before every timed call on ``device``: a write of at least twice its
        last-level cache, queued where the op runs. None when this backend cannot flush that device."""
        if device.kind == "cpu":
            from gpubench.cacheflush import host_flusher

            return host_flusher(self.last_level_cache(device))
        return None

    def device_identity(self, device: DeviceInfo) -> dict[str, str]:
        """What finds ``device`` outside its framework: ``uuid`` and/or ``pci_bus_id`` (for NVML and sysfs)."""
        return {}

    def host_link(self, device: DeviceInfo):
        """The device's link to host memory (:class:`gpubench.plausibility.HostLink`), None for a CPU or unknown."""
        from gpubench.plausibility import datasheet_host_link, host_link

        if device.kind == "cpu":
            return None
        ident = self.device_identity(device)
        if device.kind != "cuda" and not ident:
            return datasheet_host_link(device.name)
        return host_link(device.name, ident.get("uuid"), ident.get("pci_bus_id"))


def dtype_storage(dtype: str) -> np.dtype:
    """NumPy storage dtype of a gpubench dtype on the host (bfloat16 values live in float32)."""
    return np.dtype(np.float32) if dtype == "bfloat16" else np.dtype(dtype)

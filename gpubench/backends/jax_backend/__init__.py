"""JAX on the CPU and on CUDA GPUs (XLA): every op ``jax.jit``-compiled when the case is built.

Built through gpubench's public extension points only — the ``gpubench.backends`` entry point, the
:class:`~gpubench.backends.base.Backend` contract, :class:`~gpubench.ops.BoundOp` and, for MNIST,
:class:`~gpubench.workloads.training.TrainingSession` — so it is also the worked example of a
third-party backend.

* **Devices.** ``cpu`` is JAX's CPU device; ``cuda:N`` is the N-th device of JAX's ``cuda``
  platform (the ``jax[cuda13]`` wheels). Without one, a ``cuda`` case is skipped with the reason
  JAX gives. GPU memory is not preallocated (``XLA_PYTHON_CLIENT_PREALLOCATE=false`` unless set),
  so JAX does not take 75 % of the GPU beside other backends.
* **Compilation outside the timing.** Each op is lowered and compiled for its exact inputs at
  build time (``jax.jit(f).lower(...).compile()``) and the compiled executable is what is called.
* **Synchronization.** JAX dispatches asynchronously on every platform (the CPU too). Every timed
  call records the array it produced as the device's latest (:meth:`JaxBackend.keep`);
  :meth:`JaxBackend.synchronize` blocks on it (``block_until_ready``). XLA runs one device's
  executions in dispatch order, so the last one finishing means all have. The clock is the host's
  ``perf_counter`` bracketed by that synchronization: it includes JAX's per-call dispatch cost
  (a few microseconds), which back-to-back calls overlap with the device's work. On a GPU the
  timer (:class:`DispatchTimer`) also reads the clock when the last call has been dispatched,
  before the closing synchronization: the host's time per call beside the device's, so a case whose
  device waited for dispatches is flagged ``launch_bound`` (:func:`gpubench.harness.launch_bound`).
* **Cold cache on a GPU.** :meth:`JaxBackend.cache_flusher` adds one to every element of a donated
  uint32 buffer twice the L2 (read from the CUDA driver, else the datasheet): a compiled, in-place
  read-modify-write queued on the device like the case's own work, which the timer's opening
  synchronization waits for.
* **Precision.** float32 products and convolutions ask for ``Precision.HIGHEST``: on Ampere and
  later GPUs JAX's default float32 precision is TF32, and the float32 check is a float32 check.
  ``tf32 = true`` asks for the explicit ``TF32_TF32_F32`` dot algorithm instead.
* **float64.** JAX computes in 32 bits unless ``jax_enable_x64`` is on. A float64 case turns it on
  for its duration (:meth:`JaxBackend.case_scope`) and restores it after, so every other case runs
  in JAX's default configuration.
* **No aliases.** On its CPU device ``jax.device_put`` wraps a 64-byte-aligned NumPy array
  instead of copying it, even with ``may_alias=False``; :meth:`JaxBackend.upload` makes sure every
  input is a buffer of JAX's own.
* **Immutable arrays.** A JAX array is never written in place. The arrays an op reads live in
  :class:`DeviceSlot` objects, so ``include_transfer`` can put a fresh upload in the slot
  (:meth:`JaxBackend.copy_in`) before each call.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from gpubench.backends.base import Backend, DeviceInfo
from gpubench.errors import Unavailable, require
from gpubench.records import CaseSpec

JAX_DTYPES = ("float64", "float32", "float16", "bfloat16")


class DeviceSlot:
    """A mutable reference to an immutable JAX array: what an op reads, and what ``include_transfer`` refills.

    ``dtype`` is the gpubench dtype the array holds (a host array copied in is converted to it).
    """

    __slots__ = ("value", "dtype")

    def __init__(self, value: Any, dtype: str | None = None):
        self.value = value
        self.dtype = dtype


class DispatchTimer:
    """The synchronized host clock around ``number`` calls, which also notes when the last one was dispatched.

    Returns synchronize → calls → synchronize on ``perf_counter``, like :class:`gpubench.harness.HostTimer`,
    and leaves in ``last_host_s`` the seconds from the start to the return of the last call (JAX returns
    from a call once it is queued): the host's issue time, which :func:`gpubench.harness.launch_bound`
    compares with the whole.
    """

    name = "perf_counter"

    def __init__(self, sync: Any, clock: Any = None):
        self.sync = sync
        self.clock = clock or time.perf_counter
        self.last_host_s: float | None = None

    def __call__(self, fn: Any, number: int) -> float:
        sync, clock = self.sync, self.clock
        it = itertools.repeat(None, number)
        sync()
        t0 = clock()
        for _ in it:
            fn()
        issued = clock()
        sync()
        t1 = clock()
        self.last_host_s = issued - t0
        return t1 - t0


class JaxBackend(Backend):
    """JAX arrays on ``cpu`` or ``cuda:N``, ops compiled by XLA."""

    name = "jax"
    device_kinds = ("cpu", "cuda")
    extra = "jax"
    ops_package = "gpubench.backends.jax_backend"
    description = "JAX (CPU and CUDA), XLA-compiled"

    def __init__(self) -> None:
        self.jax = None
        self._devices: list[DeviceInfo] | None = None
        self._jax_devices: dict[str, Any] = {}
        self._latest: dict[str, Any] = {}
        self._cuda_reason = ""

    # --- discovery -------------------------------------------------------------------------------
    def load(self) -> None:
        """Import JAX (GPU memory not preallocated) and find its devices; say why CUDA is absent."""
        if self.jax is not None:
            return
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        jax = require("jax", "jax", self.extra)
        try:
            cpu = jax.devices("cpu")
        except RuntimeError as exc:  # noqa: BLE001 - a broken install must read as a reason
            raise Unavailable(f"jax: no CPU backend: {str(exc).splitlines()[0]}") from exc
        try:
            gpus = jax.devices("cuda")
        except RuntimeError as exc:  # JAX's own words: "Unknown backend cuda. Available backends are ['cpu']"
            gpus, self._cuda_reason = [], str(exc).strip().splitlines()[0]
        self._jax_devices = {"cpu": cpu[0], **{f"cuda:{i}": d for i, d in enumerate(gpus)}}
        self.jax = jax

    def devices(self) -> list[DeviceInfo]:
        """The CPU and every device of JAX's ``cuda`` platform."""
        if self._devices is not None:
            return self._devices
        from gpubench.envinfo import cpu_model

        out = []
        for device_id, d in self._jax_devices.items():
            if device_id == "cpu":
                out.append(DeviceInfo("cpu", cpu_model(), "cpu", dtypes=JAX_DTYPES,
                                      details={"jax_device": str(d), "threads": _cpu_threads()}))
                continue
            try:
                stats = d.memory_stats() or {}
            except Exception:  # noqa: BLE001 - memory statistics are optional in PJRT
                stats = {}
            out.append(DeviceInfo(device_id, d.device_kind, "cuda", memory_bytes=stats.get("bytes_limit"),
                                  dtypes=JAX_DTYPES,
                                  details={"jax_device": str(d),
                                           "capability": getattr(d, "compute_capability", None),
                                           "sm_count": getattr(d, "core_count", None)}))
        self._devices = out
        return out

    def resolve_device(self, wanted: str) -> DeviceInfo:
        """As :meth:`Backend.resolve_device`; a missing ``cuda`` device is a skip with JAX's own reason."""
        if wanted.split(":")[0] == "cuda" and not any(d.kind == "cuda" for d in self.devices()):
            raise Unavailable(f"jax: no cuda device found ({self._cuda_reason or 'JAX lists none'})")
        return super().resolve_device(wanted)

    def jax_device(self, device: DeviceInfo) -> Any:
        """JAX's device object for ``device``."""
        return self._jax_devices[device.id]

    @contextlib.contextmanager
    def case_scope(self, spec: CaseSpec, device: DeviceInfo) -> Iterator[None]:
        """Turn on 64-bit arrays for a float64 case (JAX computes in 32 bits otherwise); restore after."""
        config = self.jax.config
        before = bool(config.jax_enable_x64)
        wanted = before or spec.dtype == "float64"
        if wanted != before:
            config.update("jax_enable_x64", wanted)
        try:
            yield
        finally:
            self._latest.pop(device.id, None)
            if wanted != before:
                config.update("jax_enable_x64", before)

    # --- arrays ------------------------------------------------------------------------------------
    def jnp_dtype(self, dtype: str) -> Any:
        """The ``jax.numpy`` dtype of a gpubench dtype name."""
        return getattr(self.jax.numpy, dtype)

    def upload(self, array, device, dtype=None):
        """Copy a host array onto ``device`` as ``dtype``: a buffer of JAX's own, never an alias of ``array``.

        On its CPU device JAX wraps a 64-byte-aligned NumPy array instead of copying it, even with
        ``may_alias=False`` (JAX 0.10: the flag is honoured for JAX arrays, not NumPy ones). An input
        must be JAX's own: ops donate their buffers (saxpy's y) and the host inputs must stay pristine.
        """
        jax = self.jax
        host = np.ascontiguousarray(array if dtype is None or dtype == "bfloat16" else np.asarray(array, dtype))
        out = jax.device_put(host, self.jax_device(device), may_alias=False)
        if device.kind == "cpu" and host.size and out.unsafe_buffer_pointer() == host.ctypes.data:
            out = out.copy()
        if dtype == "bfloat16":
            out = out.astype(self.jax.numpy.bfloat16)  # exact: host values are bfloat16-representable
        return out

    def download(self, handle):
        """Wait for the array and return a NumPy copy (bfloat16 widened to float32, which NumPy has)."""
        if isinstance(handle, DeviceSlot):
            handle = handle.value
        handle = handle.block_until_ready()
        # On the CPU np.asarray is a read-only view of JAX's buffer (which a later donating call may
        # reuse); on a GPU it is cached on the array. A copy is what the caller owns.
        host = np.asarray(handle)
        if host.dtype.name == "bfloat16":
            return host.astype(np.float32)
        return host.copy()

    def copy_in(self, handle, array, device):
        """Put a fresh upload of ``array`` (pageable host memory) into the slot ``handle``."""
        handle.value = self.upload(array, device, handle.dtype)

    def copy_out(self, handle, array, device):
        """Copy a device array into an existing host array; returns once the data is in host memory."""
        if isinstance(handle, DeviceSlot):
            handle = handle.value
        host = np.asarray(handle)  # blocks; a fresh array each call, so never a cached host copy
        np.copyto(array, host.astype(array.dtype) if host.dtype.name == "bfloat16" else host, casting="unsafe")

    def keep(self, device: DeviceInfo, array: Any) -> Any:
        """Record ``array`` as the latest work queued on ``device`` (what :meth:`synchronize` waits for)."""
        self._latest[device.id] = array
        return array

    def synchronize(self, device):
        """Block until the latest array an op produced on ``device`` is ready (``block_until_ready``)."""
        latest = self._latest.get(device.id)
        if latest is not None:
            self.jax.block_until_ready(latest)

    def timer(self, device):
        """On a GPU, the synchronized host clock that also notes the dispatch time (:class:`DispatchTimer`);
        on the CPU, the synchronized host clock."""
        if device.kind == "cuda":
            return DispatchTimer(lambda: self.synchronize(device))
        return super().timer(device)

    def last_level_cache(self, device):
        """A GPU's L2 from the CUDA driver (JAX does not report it), else its datasheet; the host's for the CPU."""
        if device.kind != "cuda":
            return super().last_level_cache(device)
        from gpubench.cacheflush import gpu_l2_cache

        return gpu_l2_cache(int(device.id.split(":")[1]), device.name)

    def cache_flusher(self, device):
        """On a GPU, ``buffer + 1`` over a donated uint32 buffer twice the L2, compiled (XLA updates it in place);
        on the CPU, the host flusher."""
        if device.kind != "cuda":
            return super().cache_flusher(device)
        from gpubench.cacheflush import flush_bytes
        from gpubench.ops import CacheFlusher

        cache = self.last_level_cache(device)
        if cache is None:
            return None
        jnp = self.jax.numpy
        nbytes = flush_bytes(cache[0])
        slot = DeviceSlot(self.jax.device_put(np.zeros(nbytes // 4, np.uint32), self.jax_device(device)))
        bump = self.compile(lambda b: b + jnp.uint32(1), slot.value, donate=(0,))

        def flush() -> None:
            slot.value = self.keep(device, bump(slot.value))

        def close() -> None:
            slot.value = None

        flush()  # compiled and first touched outside any timing
        self.synchronize(device)
        return CacheFlusher(flush, nbytes, cache[0], cache[1], close, buffer=slot)

    def compile(self, fn, *args, donate: tuple[int, ...] = (), static: dict[str, Any] | None = None):
        """``jax.jit(fn)`` lowered and compiled for ``args`` now (outside any timing); the executable."""
        jitted = self.jax.jit(fn, donate_argnums=donate)
        return jitted.lower(*args, **(static or {})).compile()

    def precision(self, dtype: str, tf32: bool = False) -> Any:
        """The ``precision`` of a product or convolution: true float32 unless the case asks for TF32."""
        lax = self.jax.lax
        if dtype == "float32":
            return lax.DotAlgorithmPreset.TF32_TF32_F32 if tf32 else lax.Precision.HIGHEST
        return None

    def environment(self):
        jax = self.jax
        import jaxlib

        env = {"jax": jax.__version__, "jaxlib": jaxlib.__version__, "jax_platform": jax.default_backend(),
               "jax_devices": [str(d) for d in self._jax_devices.values()],
               "xla_python_client_preallocate": os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE")}
        try:
            import jax.extend

            env["jax_platform_version"] = jax.extend.backend.get_backend().platform_version
        except Exception:  # noqa: BLE001 - an optional fact
            pass
        if self._cuda_reason:
            env["jax_cuda"] = self._cuda_reason
        return env


def _cpu_threads() -> int:
    """Cores this process may run on (XLA's CPU thread pool uses them all)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1

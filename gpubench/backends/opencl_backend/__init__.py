"""PyOpenCL on any OpenCL platform and device (PoCL on a CPU, NVIDIA's or AMD's driver on a GPU).

Kernels are the source files under ``kernels/opencl`` (shipped as ``gpubench.kernels``), built
per device with the dtype and tile size as ``-D`` options. Every command queue has profiling
enabled and cases are timed with OpenCL profiling events (:class:`OpenclEventTimer`).
Devices are ``opencl:P:D`` (platform P, device D), also selectable by a name fragment.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import numpy as np

from gpubench.backends.base import Backend, BoundOp, DeviceInfo
from gpubench.errors import Unavailable, require


class KernelBuildError(RuntimeError):
    """An OpenCL kernel failed to compile; the message carries the compiler log on one line."""


class OpenclEventTimer:
    """Times ``number`` enqueued calls from the first event's start to the last event's end.

    ``fn`` must enqueue its work and return the :class:`pyopencl.Event` of it. On an in-order
    queue the span covers every call and the gaps between them, like a device-side wall clock:
    when the host enqueues more slowly than the device runs, the idle gaps are counted. So the
    host clock is read around the enqueue loop too (before waiting) and left in ``last_host_s``,
    which :func:`gpubench.harness.launch_bound` compares with the device span.
    """

    name = "opencl_event"

    def __init__(self, host_clock=time.perf_counter):
        self.host_clock = host_clock
        self.last_host_s: float | None = None

    def __call__(self, fn, number):
        h0 = self.host_clock()
        events = [fn() for _ in range(number)]
        self.last_host_s = self.host_clock() - h0
        events[-1].wait()
        return (events[-1].profile.end - events[0].profile.start) * 1e-9


#: Work-items per work-group gpubench's one-output-per-work-item kernels aim for: a multiple of
#: every GPU's warp or wavefront (32, 64), within every device's limit met so far.
PREFERRED_WORK_GROUP = 256
#: Work-items along dimension 0 (neighbouring outputs in memory) a group keeps where the range
#: allows, so that a warp reads and writes contiguous memory.
CONTIGUOUS_ITEMS = 32


def _pow2_floor(n: int) -> int:
    return 1 << (max(1, int(n)).bit_length() - 1)


def _pow2_ceil(n: int) -> int:
    return 1 << (max(1, int(n)) - 1).bit_length()


def work_group(global_size: tuple[int, ...], limit: int,
               max_item_sizes: tuple[int, ...] | None = None) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """An explicit work-group size for ``global_size`` and the global size rounded up to it.

    Left to the driver (``local_size=None``), NVIDIA's OpenCL picks a divisor of the global size,
    which for an odd size can be a handful of work-items. Instead: powers of two, as many
    work-items as allowed up to :data:`PREFERRED_WORK_GROUP` (``limit`` is the smaller of the
    device's ``max_work_group_size`` and the kernel's ``WORK_GROUP_SIZE``), at least
    :data:`CONTIGUOUS_ITEMS` along dimension 0 where the range has them, and among those the
    shape that leaves the fewest padding work-items idle (ties: the longest low dimensions). The
    kernels return early for work-items past their range. Returns ``(global, local)``.
    """
    dims = len(global_size)
    item_caps = tuple(max_item_sizes or (limit,) * dims)[:dims]
    budget = _pow2_floor(min(PREFERRED_WORK_GROUP, limit))
    choices = []
    for dim, (g, cap) in enumerate(zip(global_size, item_caps)):
        top = min(_pow2_ceil(g), budget, _pow2_floor(cap))
        floor = min(top, CONTIGUOUS_ITEMS) if dim == 0 else 1
        choices.append([1 << e for e in range(floor.bit_length() - 1, top.bit_length())])
    best_key, best = None, None
    for local in itertools.product(*choices):
        size = int(np.prod(local))
        if size > budget:
            continue
        padded = int(np.prod([-(-g // n) * n for g, n in zip(global_size, local)]))
        key = (-size, padded, tuple(-n for n in local))
        if best_key is None or key < best_key:
            best_key, best = key, local
    local = tuple(int(n) for n in best)
    padded_global = tuple(-(-g // n) * n for g, n in zip(global_size, local))
    return padded_global, local


def kernel_source(relpath: str) -> str:
    """Text of a kernel file shipped in ``gpubench.kernels`` (e.g. ``opencl/saxpy.cl``)."""
    from importlib.resources import files

    return files("gpubench.kernels").joinpath(relpath).read_text(encoding="utf-8")


def dtype_options(dtype: str) -> list[str]:
    """Build options selecting the kernel's scalar type."""
    if dtype == "float64":
        return ["-DREAL=double", "-DUSE_FP64"]
    return ["-DREAL=float"]


def _one_line(log: str, limit: int = 1500) -> str:
    lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
    text = " | ".join(lines)
    return text if len(text) <= limit else text[:limit] + " ..."


class OpenclBackend(Backend):
    """PyOpenCL kernels from ``kernels/opencl`` on every OpenCL device found."""

    name = "opencl"
    device_kinds = ("opencl",)
    extra = "opencl"
    ops_package = "gpubench.backends.opencl_backend"
    description = "PyOpenCL kernels (any OpenCL device; PoCL on a CPU)"

    def __init__(self) -> None:
        self.cl = None
        self._devices: list[DeviceInfo] | None = None
        self._cl_devices: dict[str, Any] = {}
        self._queues: dict[str, Any] = {}
        self._programs: dict[tuple[str, str, tuple[str, ...], str], Any] = {}

    def load(self) -> None:
        """Import PyOpenCL and find at least one platform."""
        cl = require("opencl", "pyopencl", self.extra)
        try:
            platforms = cl.get_platforms()
        except cl.Error as exc:  # no ICD loader entries: clGetPlatformIDs fails
            raise Unavailable("opencl: no platform") from exc
        if not platforms:
            raise Unavailable("opencl: no platform")
        self.cl = cl

    def devices(self) -> list[DeviceInfo]:
        """Every device of every platform as ``opencl:P:D``; float64 only with ``cl_khr_fp64``."""
        if self._devices is not None:
            return self._devices
        cl = self.cl
        out = []
        for p, platform in enumerate(cl.get_platforms()):
            try:
                devs = platform.get_devices()
            except cl.Error:  # a platform with no devices raises DEVICE_NOT_FOUND
                continue
            for d, dev in enumerate(devs):
                dev_id = f"opencl:{p}:{d}"
                fp64 = "cl_khr_fp64" in dev.extensions.split()
                out.append(DeviceInfo(
                    dev_id, f"{dev.name.strip()} [{platform.name.strip()}]", "opencl",
                    memory_bytes=int(dev.global_mem_size),
                    dtypes=("float64", "float32") if fp64 else ("float32",),
                    details={"platform": platform.name.strip(), "vendor": dev.vendor.strip(),
                             "type": cl.device_type.to_string(dev.type), "version": dev.version.strip(),
                             "driver": dev.driver_version.strip(), "compute_units": dev.max_compute_units,
                             "max_work_group_size": dev.max_work_group_size,
                             "local_mem_bytes": dev.local_mem_size},
                    hardware=_hardware(cl, dev.type),
                ))
                self._cl_devices[dev_id] = dev
        self._devices = out
        return out

    # --- device handles ------------------------------------------------------------------------
    def queue(self, device: DeviceInfo):
        """The profiling-enabled in-order command queue of ``device`` (one context per device)."""
        if device.id not in self._queues:
            cl = self.cl
            dev = self._cl_devices[device.id]
            ctx = cl.Context([dev])
            self._queues[device.id] = cl.CommandQueue(
                ctx, dev, properties=cl.command_queue_properties.PROFILING_ENABLE)
        return self._queues[device.id]

    def program(self, device: DeviceInfo, relpath: str, options: list[str]):
        """Build ``relpath`` (once per device, options and source text); return ``(program, source)``."""
        source = kernel_source(relpath)
        key = (device.id, relpath, tuple(options), source)
        if key not in self._programs:
            self._programs[key] = build_program(self.cl, self.queue(device).context, self._cl_devices[device.id],
                                                source, options, relpath)
        return self._programs[key], source

    def launch_shape(self, device: DeviceInfo, kernel, global_size: tuple[int, ...]):
        """``(global, local)`` for ``kernel`` over ``global_size``: see :func:`work_group`."""
        cl = self.cl
        dev = self._cl_devices[device.id]
        limit = min(int(dev.max_work_group_size),
                    int(kernel.get_work_group_info(cl.kernel_work_group_info.WORK_GROUP_SIZE, dev)))
        return work_group(tuple(int(g) for g in global_size), limit, tuple(int(n) for n in dev.max_work_item_sizes))

    def bind_kernel(self, device: DeviceInfo, kernel, global_size, local_size, *, inputs: dict, output,
                    sources: dict[str, str], resident: tuple = ()) -> BoundOp:
        """A ready op that enqueues ``kernel`` (arguments already set) and returns its event per call.

        ``inputs`` and ``output`` are the device arrays the kernel reads and writes: declared for
        ``include_transfer`` (``output`` is also the result); ``resident`` are arrays that stay on
        the device (conv2d's filters). ``close`` releases them all.
        """
        cl, queue = self.cl, self.queue(device)

        def call():
            return cl.enqueue_nd_range_kernel(queue, kernel, global_size, local_size)

        def close():
            for array in {id(a): a for a in (*inputs.values(), output, *resident)}.values():
                array.data.release()

        return BoundOp(call=call, result=lambda: self.download(output), timer=self.timer(device), close=close,
                       sources=sources, device_inputs=inputs, device_output=output)

    # --- data movement ---------------------------------------------------------------------------
    def upload(self, array, device, dtype=None):
        """Copy a host array into a new device buffer (a ``pyopencl.array.Array``)."""
        import pyopencl.array as cla

        host = np.ascontiguousarray(array if dtype is None else array.astype(dtype))
        return cla.to_device(self.queue(device), host)

    def download(self, handle):
        """Wait for the buffer's pending writes and return a host copy."""
        return handle.get()

    def copy_in(self, handle, host, device):
        """Copy a host array of the same dtype into an existing device buffer (blocking)."""
        handle.set(host)

    def copy_out(self, handle, host, device):
        """Copy a device buffer into a host array of the same dtype; returns once the data is there."""
        handle.get(ary=host)

    def synchronize(self, device):
        """Wait until every command queued on ``device`` has finished."""
        self.queue(device).finish()

    def timer(self, device):
        """OpenCL profiling events (ops return the event of each enqueued call)."""
        return OpenclEventTimer()

    def last_level_cache(self, device):
        """The device's ``global_mem_cache_size`` (PoCL reports the CPU's last-level cache); sysfs for a CPU
        device that reports none."""
        size = int(self._cl_devices[device.id].global_mem_cache_size or 0)
        if size > 0:
            return size, "OpenCL global_mem_cache_size"
        if "CPU" in str(device.details.get("type", "")).upper():
            from gpubench.cacheflush import host_cache_bytes

            return host_cache_bytes()
        return None

    def cache_flusher(self, device):
        """``enqueue_fill_buffer`` of a buffer twice the cache on the case's in-order queue."""
        from gpubench.cacheflush import flush_bytes
        from gpubench.ops import CacheFlusher

        cache = self.last_level_cache(device)
        if cache is None:
            return None
        cl, queue = self.cl, self.queue(device)
        nbytes = flush_bytes(cache[0])
        buffer = cl.Buffer(queue.context, cl.mem_flags.READ_WRITE, nbytes)
        pattern = [np.uint32(0)]

        def flush():
            pattern[0] = ~pattern[0]  # a new value each time: every word is written
            cl.enqueue_fill_buffer(queue, buffer, pattern[0], 0, nbytes)

        def close():
            queue.finish()
            buffer.release()

        return CacheFlusher(flush, nbytes, cache[0], cache[1], close)

    def environment(self):
        cl = self.cl
        return {"pyopencl": cl.VERSION_TEXT,
                "platforms": [f"{p.name.strip()} ({p.version.strip()})" for p in cl.get_platforms()]}


def build_program(cl, context, device, source: str, options: list[str], name: str = "kernel"):
    """Compile ``source`` for ``device``; raise :class:`KernelBuildError` with the compiler log on failure."""
    import warnings

    prg = cl.Program(context, source)
    try:
        with warnings.catch_warnings():
            # Successful builds with a non-empty log (e.g. PoCL's vector-ABI notes) are not the user's concern.
            warnings.simplefilter("ignore", cl.CompilerWarning)
            return prg.build(options=options, devices=[device])
    except cl.Error as exc:
        try:
            log = prg.get_build_info(device, cl.program_build_info.LOG)
        except cl.Error:
            log = ""
        log = log.strip() or str(exc)
        raise KernelBuildError(f"opencl: building {name} failed on {device.name.strip()}: {_one_line(log)}") from exc


def _hardware(cl, device_type: int) -> str:
    """What an OpenCL device physically is (``DeviceInfo.hardware``), from its device type bits."""
    if device_type & cl.device_type.GPU:
        return "gpu"
    if device_type & cl.device_type.CPU:
        return "cpu"
    return "accelerator"

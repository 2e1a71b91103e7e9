"""JAX copies, every call into a new destination array.

* ``h2d``: ``jax.device_put(host, device, may_alias=False)`` from a NumPy array (pageable), or from
  an array in the device's ``pinned_host`` memory into its ``device`` memory (pinned).
* ``d2h`` pageable: ``np.asarray`` of a *new* JAX array on the source's device buffer
  (:func:`fresh_host_read`): JAX copies it into a new NumPy array in ordinary host memory.
  ``d2h`` pinned: ``jax.device_put(src, <the device's pinned_host memory>, may_alias=False)``.
* ``d2d``: a compiled copy, ``jax.jit(lambda x: x.copy())``: XLA writes a new buffer (an output
  never aliases an input that is not donated). ``jax.device_put`` to the same device would copy
  too, with ``may_alias=False``, but through a path that costs hundreds of µs per call on the CPU.

**Why d2h reads a new array each call.** A JAX array keeps the host copy it made the first time it
was read (``jax.Array._value``, cached in ``_npy_value`` and in jaxlib's ``PyHostValue``), so every
later ``np.asarray``/``jax.device_get`` of the same array moves no bytes. ``jax.device_put(src,
<the CPU device>)`` is no way round it: the CPU device belongs to another PJRT client than the GPU,
and for an array of another client jaxlib's ``device_put`` reads ``src._value`` (``HandlePyArray``
in ``xla/python/py_values.cc``: "fallback to python for non-matching clients"), so after the first
call it copies the cached host value in host memory and nothing crosses PCIe. Each call therefore
wraps the source's device buffer in a new ``jax.Array``
(``jax.make_array_from_single_device_arrays``: no device copy, a few µs of Python, inside the
timing as any fresh array a program reads would be) and reads that. JAX allocates the destination
NumPy array on every read, as every ``np.asarray`` of a new array does; above the C library's
``mmap`` threshold (at most 32 MiB with glibc) that fresh memory also costs page faults, which the
preallocated destinations of torch and CuPy do not pay: it is what a JAX program pays. The tests
show the cache and the fresh read with real JAX on the CPU, where a sub-byte (``int4``) array must
be copied to be read, as a GPU array must.

``may_alias=False`` elsewhere: without it ``device_put`` may hand back an array it already has. JAX
arrays are immutable, so a destination cannot be prefilled: the check compares the last call's
destination with the source bit for bit, and the tests check that each call makes a new buffer
holding the source's data of that moment. A pageable copy makes the host wait for it
(``BoundOp.blocks_host``), so it is never flagged ``launch_bound``.

On the CPU device, host memory *is* device memory, and JAX's own API moves nothing between host
and device: ``jax.device_put`` wraps a 64-byte-aligned NumPy array instead of copying it (even with
``may_alias=False``, which JAX 0.10 honours for JAX arrays only), and ``np.asarray`` of a JAX CPU
array is a view of its buffer. So h2d and d2h are skipped there with that reason, and pinned memory
means nothing there; d2d runs (a memory copy in host memory). On a GPU, pinned memory is JAX's
``pinned_host`` memory kind, where the device offers it.
"""

from __future__ import annotations

import numpy as np

from gpubench.backends.base import BoundOp
from gpubench.backends.jax_backend import DeviceSlot

#: Why h2d and d2h do not run on the CPU device.
CPU_HOST_COPY = ("jax: on the CPU device host memory is device memory: jax.device_put wraps an aligned NumPy "
                 "array (even with may_alias=False) and np.asarray is a view, so {direction} moves no bytes")


def memory_kinds(jax_device) -> tuple[str, ...]:
    """Memory kinds a JAX device can hold arrays in (``device``, ``pinned_host``, ...)."""
    try:
        return tuple(m.kind for m in jax_device.addressable_memories())
    except Exception:  # noqa: BLE001 - older PJRT plug-ins have no memory spaces
        return ()


def unsupported(backend, spec, params, device):
    """h2d/d2h need a device with memory of its own; pinned memory one that offers JAX's ``pinned_host``."""
    direction = params["direction"]
    if device.kind == "cpu" and direction != "d2d":
        return CPU_HOST_COPY.format(direction=direction)
    if params.get("memory") == "pinned":
        kinds = memory_kinds(backend.jax_device(device))
        if "pinned_host" not in kinds:
            return f"jax: {device.id} offers no pinned_host memory (memory kinds: {', '.join(kinds) or 'none'})"
    return None


def fresh_host_read(jax, src):
    """A function that copies ``src`` (a single-device JAX array) into a new host NumPy array on every call.

    Each call reads a new ``jax.Array`` over ``src``'s device buffer (no device copy), one whose host
    value JAX has not cached, so the bytes really move; reading ``src`` itself would copy only once.
    """
    make, shape, sharding = jax.make_array_from_single_device_arrays, src.shape, src.sharding
    asarray = np.asarray

    def read() -> np.ndarray:
        return asarray(make(shape, sharding, [src]))

    return read


class Copier:
    """One direction's copy: ``copy(src)`` makes a new array; ``last`` holds the latest destination."""

    def __init__(self, backend, device, copy, src, keep: bool = True):
        self.copy = copy
        self.keep = backend.keep if keep else (lambda device, array: array)
        self.device = device
        self.src = src
        self.last = DeviceSlot(None)

    def __call__(self) -> None:
        self.last.value = self.keep(self.device, self.copy(self.src))


def build(backend, spec, params, inputs, device):
    """Bind one copy per call in the case's direction and host memory."""
    jax = backend.jax
    from jax.sharding import SingleDeviceSharding

    jdev = backend.jax_device(device)
    src_np = np.ascontiguousarray(inputs["src"]).copy()  # the op's own host source
    direction, pinned = params["direction"], params.get("memory") == "pinned"
    put = jax.device_put
    to_host = direction == "d2h" and not pinned  # a NumPy destination: np.asarray returns once it is there
    if direction == "d2d":
        src = backend.upload(src_np, device)
        copy = backend.compile(lambda x: x.copy(), src)
        how, host_kind = "compiled copy jax.jit(lambda x: x.copy())", "device"
    elif to_host:
        src = backend.upload(src_np, device)
        read = fresh_host_read(jax, src)

        def copy(x):
            return read()

        how, host_kind = "np.asarray of a new jax.Array over the source buffer (no cached host copy)", "pageable"
    else:
        if direction == "h2d":
            src = put(src_np, SingleDeviceSharding(jdev, memory_kind="pinned_host")) if pinned else src_np
            target = SingleDeviceSharding(jdev, memory_kind="device") if pinned else jdev
        else:
            src = backend.upload(src_np, device)
            target = SingleDeviceSharding(jdev, memory_kind="pinned_host")

        def copy(x):
            return put(x, target, may_alias=False)

        how, host_kind = f"jax.device_put(may_alias=False) to {target}", "pinned_host" if pinned else "pageable"
    if not isinstance(src, np.ndarray):
        jax.block_until_ready(src)
    copier = Copier(backend, device, copy, src, keep=not to_host)
    copier()  # the first copy (allocations), outside any timing
    backend.synchronize(device)

    def result():
        backend.synchronize(device)
        last = copier.last.value
        return last.copy() if isinstance(last, np.ndarray) else backend.download(copier.last)

    return BoundOp(call=copier, result=result, timer=backend.timer(device),
                   metrics={"host_memory": host_kind, "copy": how},
                   blocks_host=direction != "d2d" and not pinned)

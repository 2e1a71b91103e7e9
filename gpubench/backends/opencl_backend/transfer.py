"""OpenCL copies, timed with profiling events.

* pageable host memory: a plain NumPy array, copied with ``enqueue_copy``;
* pinned host memory: a buffer allocated with ``mem_flags.ALLOC_HOST_PTR`` and mapped into the
  host address space — the vendor-recommended way to get page-locked memory in OpenCL (NVIDIA's
  OpenCL best-practices guide); the copies then read or write the mapped pointer;
* device to device: ``enqueue_copy`` from one buffer to another.

The destination starts filled with 0xFF bytes, so the check proves the copy happened.
"""

from __future__ import annotations

import numpy as np

from gpubench.backends.base import BoundOp


def unsupported(backend, spec, params, device):
    """Skip copies larger than the device's largest single allocation."""
    limit = int(backend.queue(device).device.max_mem_alloc_size)
    if params["bytes"] > limit:
        return f"opencl: {params['bytes']} bytes exceed the device's largest allocation ({limit} bytes)"
    return None


def build(backend, spec, params, inputs, device):
    """Allocate source and destination, bind one copy per call; each call returns its event."""
    cl = backend.cl
    mf = cl.mem_flags
    queue = backend.queue(device)
    ctx = queue.context
    src_host = np.ascontiguousarray(inputs["src"])
    nbytes = src_host.nbytes
    direction = params["direction"]
    buffers = []

    def device_buffer(flags=mf.READ_WRITE):
        buf = cl.Buffer(ctx, flags, nbytes)
        buffers.append(buf)
        return buf

    def fill(buf):
        cl.enqueue_fill_buffer(queue, buf, np.uint8(0xFF), 0, nbytes).wait()

    mapped = []

    def host_buffer(initial: np.ndarray | None):
        """The host side: pageable NumPy memory, or a mapped ALLOC_HOST_PTR buffer (pinned)."""
        if params["memory"] == "pageable":
            host = np.empty_like(src_host)
        else:
            pinned = device_buffer(mf.READ_WRITE | mf.ALLOC_HOST_PTR)
            host, ev = cl.enqueue_map_buffer(queue, pinned, cl.map_flags.READ | cl.map_flags.WRITE, 0,
                                             src_host.shape, src_host.dtype)
            ev.wait()
            mapped.append((pinned, host))
        if initial is None:
            host.view(np.uint8).fill(0xFF)
        else:
            host[...] = initial
        return host

    def read_back(buf):
        out = np.empty_like(src_host)
        cl.enqueue_copy(queue, out, buf, is_blocking=True)
        return out

    if direction == "h2d":
        host = host_buffer(src_host)
        dst = device_buffer()
        fill(dst)

        def call():
            return cl.enqueue_copy(queue, dst, host, is_blocking=False)

        def result():
            return read_back(dst)
    elif direction == "d2h":
        src = device_buffer()
        cl.enqueue_copy(queue, src, src_host, is_blocking=True)
        host = host_buffer(None)

        def call():
            return cl.enqueue_copy(queue, host, src, is_blocking=False)

        def result():
            queue.finish()
            return host.copy()
    else:
        src = device_buffer()
        cl.enqueue_copy(queue, src, src_host, is_blocking=True)
        dst = device_buffer()
        fill(dst)

        def call():
            return cl.enqueue_copy(queue, dst, src, byte_count=nbytes)

        def result():
            return read_back(dst)

    def close():
        queue.finish()
        for _, host in mapped:
            host.base.release(queue).wait()  # unmap (host.base is the pyopencl MemoryMap)
        for buf in buffers:
            buf.release()

    memory = params.get("memory", "device")
    return BoundOp(call=call, result=result, timer=backend.timer(device), close=close,
                   metrics={"host_memory": memory if direction != "d2d" else "device"},
                   blocks_host=memory == "pageable")

"""CuPy copies with ``cudaMemcpyAsync`` on the current stream, timed with CUDA events.

Pinned host memory comes from ``cupyx.empty_pinned`` (page-locked through
``cupy.cuda.alloc_pinned_memory``); pageable host memory is a plain NumPy array, which the CUDA
driver stages through its own pinned bounce buffer. The destination starts filled with 0xFF
bytes, so the check proves the copy happened.
"""

from __future__ import annotations

import numpy as np

from gpubench.backends.base import BoundOp


def build(backend, spec, params, inputs, device):
    """Bind one ``cudaMemcpyAsync`` per call in the case's direction."""
    import cupyx

    cupy = backend.cupy
    runtime = cupy.cuda.runtime
    backend.use(device)
    src_np = np.ascontiguousarray(inputs["src"])
    nbytes = src_np.nbytes
    direction = params["direction"]

    def host_array(values):
        if params.get("memory") == "pinned":
            host = cupyx.empty_pinned(values.shape, values.dtype)
        else:
            host = np.empty_like(values)
        if values is src_np:
            host[...] = values
        else:
            host.view(np.uint8).fill(0xFF)
        return host

    if direction == "h2d":
        src = host_array(src_np)
        dst = cupy.empty(src_np.shape, src_np.dtype)
        dst.view(cupy.uint8).fill(0xFF)
        dst_ptr, src_ptr, kind = dst.data.ptr, src.ctypes.data, runtime.memcpyHostToDevice
    elif direction == "d2h":
        src = cupy.asarray(src_np)
        dst = host_array(np.empty_like(src_np))
        dst_ptr, src_ptr, kind = dst.ctypes.data, src.data.ptr, runtime.memcpyDeviceToHost
    else:
        src = cupy.asarray(src_np)
        dst = cupy.empty_like(src)
        dst.view(cupy.uint8).fill(0xFF)
        dst_ptr, src_ptr, kind = dst.data.ptr, src.data.ptr, runtime.memcpyDeviceToDevice
    cupy.cuda.Device().synchronize()
    memcpy_async = runtime.memcpyAsync
    current_stream = cupy.cuda.get_current_stream

    def call():
        memcpy_async(dst_ptr, src_ptr, nbytes, kind, current_stream().ptr)

    def result():
        cupy.cuda.Device().synchronize()
        return dst.copy() if isinstance(dst, np.ndarray) else cupy.asnumpy(dst)

    # call() holds raw pointers only: the op holds the arrays, so their memory lives until close() (freed
    # earlier, the source's memory would go back to CuPy's pool or the heap while call() still copies it).
    buffers = [src, dst]

    def close():
        buffers.clear()

    return BoundOp(call=call, result=result, timer=backend.timer(device), close=close,
                   metrics={"host_memory": params.get("memory", "device")},
                   blocks_host=params.get("memory") == "pageable")

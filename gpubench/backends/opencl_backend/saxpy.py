"""OpenCL saxpy: ``kernels/opencl/saxpy.cl``, one work-item per element, updating ``y`` in place."""

from __future__ import annotations

import numpy as np

from gpubench.backends.base import BoundOp

KERNEL = "opencl/saxpy.cl"


def build(backend, spec, params, inputs, device):
    """Upload x and y, bind the kernel's arguments once; each call enqueues it and returns its event."""
    from gpubench.backends.opencl_backend import dtype_options

    cl = backend.cl
    queue = backend.queue(device)
    prg, source = backend.program(device, KERNEL, dtype_options(spec.dtype))
    x = backend.upload(inputs["x"], device, spec.dtype)
    y = backend.upload(inputs["y"], device, spec.dtype)
    n = x.size
    kernel = cl.Kernel(prg, "saxpy")
    kernel.set_args(np.uint64(n), np.dtype(spec.dtype).type(params["a"]), x.data, y.data)
    global_size = (n,)

    def call():
        return cl.enqueue_nd_range_kernel(queue, kernel, global_size, None)

    def close():
        x.data.release()
        y.data.release()

    return BoundOp(call=call, result=lambda: backend.download(y), timer=backend.timer(device), close=close,
                   sources={f"kernels/{KERNEL}": source}, device_inputs={"x": x, "y": y}, device_output=y)

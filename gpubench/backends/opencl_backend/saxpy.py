"""OpenCL saxpy: ``kernels/opencl/saxpy.cl``, one work-item per element, updating ``y`` in place.

The work-group size is explicit (:func:`~gpubench.backends.opencl_backend.work_group`) and the
range rounded up to it; the kernel skips work-items past ``n``.
"""

from __future__ import annotations

import numpy as np

KERNEL = "opencl/saxpy.cl"


def build(backend, spec, params, inputs, device):
    """Upload x and y, bind the kernel's arguments once; each call enqueues it and returns its event."""
    from gpubench.backends.opencl_backend import dtype_options

    cl = backend.cl
    prg, source = backend.program(device, KERNEL, dtype_options(spec.dtype))
    x = backend.upload(inputs["x"], device, spec.dtype)
    y = backend.upload(inputs["y"], device, spec.dtype)
    n = x.size
    kernel = cl.Kernel(prg, "saxpy")
    kernel.set_args(np.uint64(n), np.dtype(spec.dtype).type(params["a"]), x.data, y.data)
    global_size, local_size = backend.launch_shape(device, kernel, (n,))
    op = backend.bind_kernel(device, kernel, global_size, local_size, inputs={"x": x, "y": y}, output=y,
                             sources={f"kernels/{KERNEL}": source, "opencl:launch": f"local {local_size}"})
    op.metrics["work_group"] = {"global": list(global_size), "local": list(local_size)}
    return op

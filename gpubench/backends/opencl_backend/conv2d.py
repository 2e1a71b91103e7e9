"""OpenCL conv2d: the direct convolution kernel ``kernels/opencl/conv2d.cl``, one work-item per output.

The layout is a build option (``-DNHWC``); for NHWC the filters are reordered once to K×R×S×C
so the innermost loop reads input and filters contiguously. The work-group size is explicit
(:func:`~gpubench.backends.opencl_backend.work_group`) and the range rounded up to it; the kernel
skips work-items past the output in every dimension.
"""

from __future__ import annotations

import numpy as np

from gpubench.workloads.conv2d import conv_shapes

KERNEL = "opencl/conv2d.cl"


def build(backend, spec, params, inputs, device):
    """Upload input and filters, allocate the output, bind the kernel; each call returns its event."""
    from gpubench.backends.opencl_backend import dtype_options

    cl = backend.cl
    import pyopencl.array as cla

    queue = backend.queue(device)
    nhwc = params["layout"] == "NHWC"
    prg, source = backend.program(device, KERNEL, dtype_options(spec.dtype) + (["-DNHWC"] if nhwc else []))
    n, c, h, w, k, r, s, p, q, stride = conv_shapes(params)
    x = backend.upload(inputs["x"], device, spec.dtype)
    filters = inputs["w"].transpose(0, 2, 3, 1) if nhwc else inputs["w"]
    wt = backend.upload(np.ascontiguousarray(filters), device, spec.dtype)
    y = cla.empty(queue, (n, p, q, k) if nhwc else (n, k, p, q), x.dtype)
    kernel = cl.Kernel(prg, "conv2d")
    i32 = np.int32
    kernel.set_args(x.data, wt.data, y.data, *(i32(v) for v in (n, c, h, w, k, r, s, p, q, stride, params["padding"])))
    global_size, local_size = backend.launch_shape(device, kernel, (k, q, n * p) if nhwc else (q, p, n * k))
    op = backend.bind_kernel(device, kernel, global_size, local_size, inputs={"x": x}, output=y, resident=(wt,),
                             sources={f"kernels/{KERNEL}": source, "opencl:launch": f"local {local_size}"})
    op.metrics["work_group"] = {"global": list(global_size), "local": list(local_size)}
    return op

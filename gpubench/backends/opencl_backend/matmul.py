"""OpenCL matmul variants from ``kernels/opencl``.

* ``tiled`` (default): local-memory tiles, one output per work-item; the classic GPU kernel.
* ``blocked``: register blocking, RB rows x 8 columns per work-item, no local memory or barriers;
  what CPU implementations such as PoCL turn into vector FMAs (several times faster there).
"""

from __future__ import annotations

import numpy as np

VARIANTS = ("tiled", "blocked")
KERNELS = {"tiled": "opencl/matmul_tiled.cl", "blocked": "opencl/matmul_blocked.cl"}
#: Rows of C per work-item in the blocked kernel.
BLOCK_ROWS = 4
#: Above this many multiply-adds the local-memory kernel takes minutes per call on a CPU device.
CPU_TILED_MAX_MACS = 1024**3


def tile_size(device) -> int:
    """Tile edge of the tiled kernel: 16 (256 work-items per group) where the device allows it, else 8."""
    return 16 if device.details.get("max_work_group_size", 0) >= 256 else 8


def unsupported(backend, spec, params, device):
    """Only float32/float64 kernels exist; the tiled kernel is not run at large sizes on CPU devices."""
    if spec.dtype not in ("float32", "float64"):
        return f"opencl: the matmul kernels support float32 and float64, not {spec.dtype}"
    macs = params["m"] * params["n"] * params["k"]
    if spec.variant == "tiled" and "CPU" in device.details.get("type", "") and macs > CPU_TILED_MAX_MACS:
        return (f"opencl: the local-memory tiled kernel is a GPU kernel; on CPU device {device.id} sizes "
                "above 1024³ take minutes per call (use variant 'blocked')")
    return None


def build(backend, spec, params, inputs, device):
    """Upload A and B, allocate C, bind the kernel once; each call enqueues it and returns its event."""
    import pyopencl.array as cla

    from gpubench.backends.opencl_backend import dtype_options

    cl = backend.cl
    queue = backend.queue(device)
    m, n, k = params["m"], params["n"], params["k"]
    relpath = KERNELS[spec.variant]
    if spec.variant == "tiled":
        tile = tile_size(device)
        options = [*dtype_options(spec.dtype), f"-DTILE={tile}"]
        global_size = (-(-n // tile) * tile, -(-m // tile) * tile)
        local_size: tuple[int, int] | None = (tile, tile)
    else:
        options = [*dtype_options(spec.dtype), f"-DRB={BLOCK_ROWS}", "-cl-mad-enable"]
        global_size = (-(-n // 8), -(-m // BLOCK_ROWS))
        local_size = None
    prg, source = backend.program(device, relpath, options)
    a = backend.upload(inputs["a"], device, spec.dtype)
    b = backend.upload(inputs["b"], device, spec.dtype)
    c = cla.empty(queue, (m, n), dtype=np.dtype(spec.dtype))
    kernel = cl.Kernel(prg, f"matmul_{spec.variant}")
    kernel.set_args(a.data, b.data, c.data, np.int32(m), np.int32(n), np.int32(k))

    return backend.bind_kernel(device, kernel, global_size, local_size, inputs={"a": a, "b": b}, output=c,
                               sources={f"kernels/{relpath}": source, "opencl:options": " ".join(options)})

"""MNIST training on CuPy: the NumPy reference loop, line for line, with ``xp = cupy``.

The training and evaluation data go to the GPU once; minibatches are gathered on the device;
dropout uniforms come from a seeded ``cupy.random.RandomState``. Every layer is a cuBLAS GEMM
plus elementwise kernels, exactly as the reference computes it, so the comparison with the
NumPy reference shows what moving the *same* hand-written loop to a GPU buys.
"""

from __future__ import annotations

import numpy as np

from gpubench.workloads.mnist_reference import ArraySession


class CupySession(ArraySession):
    """:class:`ArraySession` on CuPy arrays; frees the memory pool on close."""

    def __init__(self, cupy, *args, **kw):
        super().__init__(cupy, *args, **kw)
        self.cupy = cupy

    def close(self) -> None:
        super().close()
        self.cupy.get_default_memory_pool().free_all_blocks()


def build(backend, spec, params, inputs, device):
    """The reference session on ``device`` (made current for the case)."""
    cupy = backend.cupy
    backend.use(device)
    seed = params["seed"] + 1

    def new_uniform():
        rs = cupy.random.RandomState(seed)
        return lambda shape: rs.random_sample(shape, dtype=cupy.float32)

    return CupySession(cupy, inputs, params, np.dtype(spec.dtype), new_uniform,
                       sync=lambda: backend.synchronize(device))

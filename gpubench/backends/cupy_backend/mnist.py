"""MNIST training on CuPy: the NumPy reference loop, line for line, with ``xp = cupy``.

The training and evaluation data go to the GPU once; minibatches are gathered on the device;
dropout uniforms come from a seeded ``cupy.random.RandomState``. Every layer is a cuBLAS GEMM
plus elementwise kernels, exactly as the reference computes it, so the comparison with the
NumPy reference shows what moving the *same* hand-written loop to a GPU buys.
"""

from __future__ import annotations

import numpy as np

from gpubench.backends.numpy_backend.mnist import train
from gpubench.workloads.mnist import training_op


def build(backend, spec, params, inputs, device):
    """``call`` runs the whole training once on ``device``."""
    cupy = backend.cupy
    index = backend.index(device)
    dtype = np.dtype(spec.dtype)

    def run():
        with cupy.cuda.Device(index):
            rs = cupy.random.RandomState(params["seed"] + 1)
            return train(cupy, inputs, params, dtype, lambda shape: rs.random_sample(shape, dtype=cupy.float32),
                         sync=lambda: backend.synchronize(device))

    def close():
        cupy.get_default_memory_pool().free_all_blocks()

    return training_op(params, run, close=close)

"""MNIST training on NumPy: the reference loop of :mod:`gpubench.workloads.mnist_reference`, in the case's dtype."""

from __future__ import annotations

import numpy as np

from gpubench.workloads.mnist_reference import ArraySession, numpy_uniform


def build(backend, spec, params, inputs, device):
    """The reference session on NumPy arrays (float32 or float64)."""
    return ArraySession(np, inputs, params, np.dtype(spec.dtype), numpy_uniform(params["seed"] + 1))

"""NumPy saxpy: two ufunc passes (NumPy has no fused a·x + y), no temporaries allocated."""

from __future__ import annotations

import numpy as np

from gpubench.backends.base import BoundOp


def build(backend, spec, params, inputs, device):
    """``tmp = a·x; y += tmp`` into preallocated buffers."""
    x = inputs["x"].copy()
    y = inputs["y"].copy()
    tmp = np.empty_like(x)
    a = x.dtype.type(params["a"])
    multiply, add = np.multiply, np.add

    def call():
        multiply(x, a, out=tmp)
        add(y, tmp, out=y)

    return BoundOp(call=call, result=lambda: y.copy())

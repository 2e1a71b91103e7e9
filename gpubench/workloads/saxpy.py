"""SAXPY: ``y = a·x + y``, the classic memory-bound kernel (reports GB/s)."""

from __future__ import annotations

import numpy as np

from gpubench.workloads.base import Param, Workload, cache_param, host_dtype, random_array


class SaxpyWorkload(Workload):
    """``y ← a·x + y`` over ``n`` elements: 2·n FLOPs, 3·n elements moved (read x, y; write y).

    The timed call updates ``y`` in place, so repeated calls keep changing it; the check runs
    one call on fresh inputs. ``cache = "cold"`` (the default) flushes the last-level cache before
    every timed call, so small sizes are measured from memory; ``"hot"`` runs calls back to back.
    """

    name = "saxpy"
    unit = "gbps"
    description = "y = a·x + y (memory bandwidth)"
    #: 2: the ``cache`` mode (cold by default).
    version = 2
    params = {
        "n": Param(int),
        "a": Param(float, default=2.0, minimum=None),
        "include_transfer": Param(bool, minimum=None, mode=True, tag="+copies"),
        "cache": cache_param(),
    }

    def bound(self, params):
        return "memory"

    def make_inputs(self, params, dtype, rng):
        n = params["n"]
        return {"x": random_array(rng, (n,), dtype), "y": random_array(rng, (n,), dtype)}

    def reference(self, inputs, params):
        return params["a"] * inputs["x"].astype(np.float64) + inputs["y"].astype(np.float64)

    def flops(self, params):
        return 2.0 * params["n"]

    def bytes_moved(self, params, dtype):
        itemsize = 2 if dtype == "bfloat16" else host_dtype(dtype).itemsize
        return 3.0 * params["n"] * itemsize

    def memory_bytes(self, params, dtype):
        n = params["n"]
        # x and y, the result read back; the float64 reference, the result's float64 copy and the difference.
        return int(3 * n * host_dtype(dtype).itemsize + 3 * n * 8)

    def device_bytes(self, params, dtype):
        """x, y and one more array (NumPy's product ``a·x``, JAX's scratch y, a framework's staging copy);
        with ``include_transfer``, the host copies of x and y each call makes."""
        n = params["n"]
        return int((5 if params.get("include_transfer") else 3) * n * host_dtype(dtype).itemsize)

    def describe(self, params):
        n = params["n"]
        size = f"2^{n.bit_length() - 1}" if n & (n - 1) == 0 else str(n)
        return f"n={size}"

"""A third-party workload plug-in for the tests: an inclusive prefix sum, ``y = cumsum(x)``.

It uses only gpubench's public extension points: the ``gpubench.workloads`` entry point, the
:class:`~gpubench.workloads.base.Workload` base class, and op modules for two built-in backends
that it brings itself (``ops``), so no file of gpubench changes to add it.
"""

import numpy as np

from gpubench.workloads.base import Param, Workload, random_array


class ScanWorkload(Workload):
    """``y = cumsum(x)`` over ``n`` elements: n − 1 additions, 2·n elements moved."""

    name = "scan"
    unit = "gbps"
    description = "inclusive prefix sum y = cumsum(x)"
    params = {"n": Param(int), "include_transfer": Param(bool, minimum=None, mode=True, tag="+copies")}
    ops = {"numpy": "gpubench_scan.ops_numpy", "torch": "gpubench_scan.ops_torch"}

    def make_inputs(self, params, dtype, rng):
        return {"x": random_array(rng, (params["n"],), dtype)}

    def reference(self, inputs, params):
        return np.cumsum(inputs["x"].astype(np.float64))

    def flops(self, params):
        return float(params["n"] - 1)

    def bytes_moved(self, params, dtype):
        return 2.0 * params["n"] * np.dtype(dtype).itemsize

    def memory_bytes(self, params, dtype):
        return int(params["n"] * (2 * np.dtype(dtype).itemsize + 16))

    def accumulation_length(self, params):
        return params["n"]

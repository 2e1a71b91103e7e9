"""Dense matrix multiply ``C = A @ B`` with A: M×K and B: K×N.

Above :data:`FREIVALDS_MIN_MNK` (M·N·K larger than 1024³) a product is checked with Freivalds'
method (:mod:`gpubench.workloads.freivalds`): ``C·X`` against ``A·(B·X)`` for random vectors X, in
O(n²), instead of against the full float64 product, an O(n³) computation on the host as long as
the product it checks. Smaller products keep the full float64 reference (cached by problem, see
:mod:`gpubench.refcache`), which costs milliseconds there.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpubench.errors import UsageError
from gpubench.workloads.base import TIMING, Param, Workload, host_dtype, random_array, timing_param
from gpubench.workloads.freivalds import BLOCK_BYTES, Projection, project

#: Products with M·N·K above this (1024³) are checked by Freivalds' method, smaller ones in full.
FREIVALDS_MIN_MNK = 1024**3


class GemmWorkload(Workload):
    """The shape side of a matrix product ``C = A·B`` (A: M×K, B: K×N), shared by every GEMM workload.

    Parameters ``m``, ``n``, ``k``, or ``size`` for a square product; 2·M·N·K FLOPs, sums of
    length K, and no algorithm in use does fewer FLOPs, so no rate beats the compute peak.
    """

    unit = "gflops"

    def normalize_params(self, params: dict[str, Any]) -> dict[str, Any]:
        params = dict(params)
        if "size" in params:
            # Checked under the name the user wrote, before it becomes m, n and k.
            size = self._check_value("size", Param(int), params.pop("size"))
            for key in ("m", "n", "k"):
                if key in params:
                    raise UsageError(f"{self.name}: give either size or m/n/k, not both")
                params[key] = size
        missing = [key for key in ("m", "n", "k") if key not in params]
        if missing:
            raise UsageError(f"{self.name}: missing parameter {', '.join(missing)} (or give size)")
        return super().normalize_params(params)

    def flops(self, params):
        return 2.0 * params["m"] * params["n"] * params["k"]

    def accumulation_length(self, params):
        return params["k"]

    def bound(self, params):
        """Every dense matmul algorithm in use performs its 2·M·N·K FLOPs: no rate beats the compute peak."""
        return "compute"

    @staticmethod
    def freivalds(params: dict[str, Any]) -> bool:
        """Whether this product is checked by Freivalds' method (M·N·K above :data:`FREIVALDS_MIN_MNK`)."""
        return params["m"] * params["n"] * params["k"] > FREIVALDS_MIN_MNK

    def randomized_reference(self, inputs, params, seed):
        """Above :data:`FREIVALDS_MIN_MNK`: the product seen through random vectors (``A·(B·X)``), else None."""
        if not self.freivalds(params):
            return None
        return project(inputs["a"], inputs["b"], seed)

    def check(self, out, ref, params, dtype):
        """The full check's ``‖out − ref‖/‖ref‖``, or its Freivalds estimate when ``ref`` is a projection."""
        if isinstance(ref, Projection):
            return ref.relative_error(out), self.tolerance(params, dtype)
        return super().check(out, ref, params, dtype)

    def check_memory_bytes(self, params: dict[str, Any]) -> int:
        """Host bytes of the float64 check beyond the inputs and the output: float64 copies of the inputs, the
        full reference, the output's float64 copy and the difference, or, with Freivalds, a few converted blocks."""
        m, n, k = params["m"], params["n"], params["k"]
        if self.freivalds(params):
            return int(2 * min(BLOCK_BYTES, 8 * max(m * k, k * n, m * n)))
        return int(2 * (m * k + k * n + m * n) * 8)

    @staticmethod
    def shape_text(params: dict[str, Any]) -> str:
        """``1024³`` for a square product, ``M×N×K`` otherwise."""
        m, n, k = params["m"], params["n"], params["k"]
        return f"{m}³" if m == n == k else f"{m}×{n}×{k}"

    def describe(self, params):
        return self.shape_text(params)


class MatmulWorkload(GemmWorkload):
    """Square (``size``) or rectangular (``m``, ``n``, ``k``) matrix multiply; 2·M·N·K FLOPs."""

    name = "matmul"
    description = "dense matrix multiply C = A·B"
    params = {
        "m": Param(int),
        "n": Param(int),
        "k": Param(int),
        "tf32": Param(bool, minimum=None, mode=True, tag="tf32"),
        "include_transfer": Param(bool, minimum=None, mode=True, tag="+copies"),
        # How the calls are timed (gpubench.timing): the lecture suite times each case three ways.
        TIMING: timing_param(),
    }

    def make_inputs(self, params, dtype, rng):
        return {
            "a": random_array(rng, (params["m"], params["k"]), dtype),
            "b": random_array(rng, (params["k"], params["n"]), dtype),
        }

    def reference(self, inputs, params):
        return inputs["a"].astype(np.float64) @ inputs["b"].astype(np.float64)

    def bytes_moved(self, params, dtype):
        m, n, k = params["m"], params["n"], params["k"]
        itemsize = 2 if dtype == "bfloat16" else host_dtype(dtype).itemsize
        return float((m * k + k * n + m * n) * itemsize)

    def memory_bytes(self, params, dtype):
        m, n, k = params["m"], params["n"], params["k"]
        elems = m * k + k * n + m * n
        # inputs and output in the host dtype, and the check's float64 arrays.
        return int(elems * host_dtype(dtype).itemsize + self.check_memory_bytes(params))

    def device_bytes(self, params, dtype):
        """A, B and C on the device (and, with ``include_transfer``, the host copies each call makes)."""
        m, n, k = params["m"], params["n"], params["k"]
        copies = 2 if params.get("include_transfer") else 1
        return int(copies * (m * k + k * n + m * n) * host_dtype(dtype).itemsize)

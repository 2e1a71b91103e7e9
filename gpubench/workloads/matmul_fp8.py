"""FP8 matrix multiply ``C = (s_A·A)·(s_B·B)`` with 8-bit floating-point operands and per-tensor scales.

The operands are stored in an 8-bit format, each with one float32 scale factor per tensor (the
"per-tensor scaling" of FP8 training recipes); the product accumulates in float32 and is
written in ``out_dtype`` (bfloat16, the usual choice, or float32). The case's dtype names the
format:

* ``float8_e4m3fn`` — both operands in E4M3 (4 exponent bits, 3 mantissa bits, largest 448, no
  infinities): the forward-pass GEMM of FP8 training;
* ``float8_e5m2`` — A in E5M2 (5 exponent, 2 mantissa bits, largest 57344), B in E4M3: the
  gradient GEMM of FP8 training (gradients need E5M2's range). cuBLASLt has no E5M2×E5M2
  kernel (torch refuses it: "Multiplication of two Float8_e5m2 matrices is not supported"), so
  this mixed pair is the E5M2 product a GPU runs.

Why a workload of its own rather than two more dtypes of ``matmul``: its problem has parts
plain matmul does not (per-tensor scales, an output dtype other than the inputs', a second
operand format for E5M2), only torch implements it (``torch._scaled_mm``), and FP8 cases never
meet the other backends' matmul code. It shares matmul's FLOP count (2·M·N·K) and reads the
same way in the report; its dtypes join :data:`gpubench.records.DTYPES`, the datasheet peaks
and the calibration.

Inputs are drawn uniform in [-1, 1) and rounded to the operand's format on the host
(:func:`round_to_float8`, exact float32 arithmetic, no ``ml_dtypes`` needed), so they are
exactly representable; a backend picks power-of-two scales from each operand's largest
magnitude to fill the format's range, which keeps quantization exact. The float64 reference is
then the exact product of the inputs, and the check sees only what the kernel adds:

* the float32 accumulation over K terms, bounded as for float32 matmul: ``1e-5·√K``;
* the rounding of C to ``out_dtype``: at most the unit roundoff, 2⁻⁸ for bfloat16 (0 extra for
  float32 output, which the accumulation term covers).

So the tolerance is ``1e-5·√K + 2⁻⁸`` for bfloat16 output (4.8e-3 at K = 8192) and
``1e-5·√K`` for float32 output. (torch 2.13's CPU ``_scaled_mm`` measured 0.42·2⁻⁸ for bfloat16
output and an exact result for float32 output at 512³.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gpubench.errors import UsageError
from gpubench.workloads.base import BASE_TOLERANCE, Param
from gpubench.workloads.matmul import GemmWorkload


@dataclass(frozen=True)
class Float8Format:
    """An 8-bit float format: significand bits after the point, smallest normal exponent, largest value."""

    name: str
    mantissa_bits: int
    min_exponent: int
    max_value: float


#: The two formats of torch, CUDA and the OCP FP8 specification.
E4M3 = Float8Format("float8_e4m3fn", 3, -6, 448.0)
E5M2 = Float8Format("float8_e5m2", 2, -14, 57344.0)
FORMATS = {f.name: f for f in (E4M3, E5M2)}

#: Operand formats (A, B) of each case dtype.
OPERANDS = {"float8_e4m3fn": (E4M3, E4M3), "float8_e5m2": (E5M2, E4M3)}

OUT_DTYPES = ("bfloat16", "float32")
#: Unit roundoff of the output dtype (the relative error of rounding one element to it).
OUT_ROUNDOFF = {"bfloat16": 2.0**-8, "float32": 0.0}


def round_to_float8(x: np.ndarray, fmt: Float8Format) -> np.ndarray:
    """Round float32 values to the nearest value of ``fmt`` (ties to even, saturating), as float32.

    Each value's quantum is 2^(e − m) for its binary exponent e (never below the format's smallest
    normal exponent, which gives the subnormals) and m mantissa bits; dividing by a power of two,
    rounding to an integer and multiplying back are all exact in float32.
    """
    x = np.asarray(x, dtype=np.float32)
    _, exp = np.frexp(x)  # x = f·2^exp with 0.5 <= |f| < 1, so the binary exponent is exp − 1
    quantum = np.ldexp(np.float32(1.0), np.maximum(exp - 1, fmt.min_exponent) - fmt.mantissa_bits)
    out = (np.rint(x / quantum) * quantum).astype(np.float32)
    return np.clip(out, -fmt.max_value, fmt.max_value)


def power_of_two_scale(amax: float, fmt: Float8Format) -> float:
    """The largest power of two ``2^e`` with ``amax·2^e <= fmt.max_value`` (1 for an all-zero tensor).

    Multiplying a tensor by it before the cast to ``fmt`` uses the format's range; being a power
    of two, it changes no significand, so representable values stay exact.
    """
    if not amax > 0:
        return 1.0
    return 2.0 ** math.floor(math.log2(fmt.max_value / amax))


class MatmulFp8Workload(GemmWorkload):
    """``C = A·B`` with FP8 operands and per-tensor scales; 2·M·N·K FLOPs; output in bfloat16 or float32."""

    name = "matmul_fp8"
    description = "FP8 matrix multiply with per-tensor scales (torch._scaled_mm), output bfloat16 or float32"
    params = {
        "m": Param(int),
        "n": Param(int),
        "k": Param(int),
        "out_dtype": Param(str, default="bfloat16", minimum=None, choices=OUT_DTYPES),
    }

    @staticmethod
    def operand_formats(dtype: str) -> tuple[Float8Format, Float8Format]:
        """Formats of A and B for a case dtype; :class:`UsageError` for a dtype that is not FP8."""
        if dtype not in OPERANDS:
            raise UsageError(f"matmul_fp8: dtype must be one of {', '.join(OPERANDS)}, got {dtype!r}")
        return OPERANDS[dtype]

    def make_inputs(self, params, dtype, rng):
        fa, fb = self.operand_formats(dtype)
        m, n, k = params["m"], params["n"], params["k"]
        a = rng.random((m, k), dtype=np.float32) * 2 - 1
        b = rng.random((k, n), dtype=np.float32) * 2 - 1
        return {"a": round_to_float8(a, fa), "b": round_to_float8(b, fb)}

    def reference(self, inputs, params):
        return inputs["a"].astype(np.float64) @ inputs["b"].astype(np.float64)

    def bytes_moved(self, params, dtype):
        m, n, k = params["m"], params["n"], params["k"]
        out_size = 2 if params["out_dtype"] == "bfloat16" else 4
        return float(m * k + k * n + m * n * out_size)

    def memory_bytes(self, params, dtype):
        m, n, k = params["m"], params["n"], params["k"]
        if self.freivalds(params):
            # float32 host inputs and their scaled copies, the result, and the check's blocks.
            return int(2 * 4 * (m * k + k * n) + 2 * 4 * m * n + self.check_memory_bytes(params))
        # float32 host inputs (and their scaled copies), float64 reference, result and check copies.
        return int(2 * 4 * (m * k + k * n) + 8 * (m * k + k * n) + 4 * 8 * m * n)

    def device_bytes(self, params, dtype):
        """The operands as float32 staging and in FP8, the output at float32 at most."""
        m, n, k = params["m"], params["n"], params["k"]
        return int(5 * (m * k + k * n) + 4 * m * n)

    def compute_dtype(self, params, dtype):
        return dtype

    def tolerance(self, params, dtype):
        return BASE_TOLERANCE["float32"] * math.sqrt(params["k"]) + OUT_ROUNDOFF[params["out_dtype"]]

    def describe(self, params):
        shape = self.shape_text(params)
        return shape if params["out_dtype"] == "bfloat16" else f"{shape} →{params['out_dtype']}"

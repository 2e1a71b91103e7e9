"""torch FP8 matmul: ``torch._scaled_mm`` with per-tensor scales, on CUDA (capability >= 8.9) and the CPU.

Each operand is quantized once, when the case is built (as FP8 training quantizes a weight once
per step, outside the GEMM): multiplied by a power-of-two scale that brings its largest
magnitude within the format's range, then cast to the FP8 dtype; the inverse scales go to
``_scaled_mm``, which applies them to the float32 accumulator. B is stored N×K and passed
transposed, the column-major layout cuBLASLt's FP8 kernels require, so no copy is timed.
The output is written into a preallocated tensor of ``out_dtype``.

On CUDA, FP8 tensor cores need compute capability 8.9 (Ada) or 9.0 (Hopper) and up, and
``_scaled_mm`` needs every dimension divisible by 16: other cases are skipped with that reason.
torch 2.13's CPU build also runs ``_scaled_mm`` for both formats (through its own kernels).
"""

from __future__ import annotations

import numpy as np

from gpubench.backends.base import BoundOp
from gpubench.workloads.matmul_fp8 import OPERANDS, power_of_two_scale

#: Smallest CUDA compute capability with FP8 tensor cores.
MIN_CAPABILITY = (8, 9)


def capability(device) -> tuple[int, int]:
    """A CUDA device's compute capability as ``(major, minor)`` (``(0, 0)`` when unknown)."""
    try:
        major, minor = str(device.details.get("capability", "0.0")).split(".")
        return int(major), int(minor)
    except ValueError:
        return 0, 0


def unsupported(backend, spec, params, device):
    """FP8 needs ``torch._scaled_mm`` and, on CUDA, capability >= 8.9 and dimensions divisible by 16."""
    torch = backend.torch
    if not hasattr(torch, "_scaled_mm") or not hasattr(torch, "float8_e4m3fn"):
        return f"torch: FP8 matmul needs torch._scaled_mm and float8 dtypes (torch >= 2.1), this is {torch.__version__}"
    if spec.dtype not in OPERANDS:
        return f"torch: matmul_fp8 runs the float8 dtypes ({', '.join(OPERANDS)}), not {spec.dtype}"
    if device.kind == "cuda":
        cap = capability(device)
        if cap < MIN_CAPABILITY:
            return (f"torch: FP8 matmul needs CUDA compute capability >= 8.9 (Ada, Hopper or newer); "
                    f"{device.id} ({device.name}) is {cap[0]}.{cap[1]}")
        odd = [f"{key}={params[key]}" for key in ("m", "n", "k") if params[key] % 16]
        if odd:
            return f"torch: _scaled_mm on CUDA needs m, n and k divisible by 16 ({', '.join(odd)})"
    return None


def quantize(backend, array: np.ndarray, fmt, device):
    """``(fp8 tensor, float32 inverse-scale tensor)`` of a host array whose values ``fmt`` represents."""
    torch = backend.torch
    scale = power_of_two_scale(float(np.max(np.abs(array))) if array.size else 0.0, fmt)
    tensor = backend.upload(array, device)  # float32; the scale and the cast below are exact
    q = (tensor * scale).to(getattr(torch, fmt.name))
    return q, torch.tensor(1.0 / scale, dtype=torch.float32, device=tensor.device)


def build(backend, spec, params, inputs, device):
    """Quantize A (M×K) and Bᵀ (N×K) with per-tensor scales and bind ``_scaled_mm`` into C."""
    torch = backend.torch
    if device.kind == "cuda":
        torch.cuda.set_device(device.id)
    fa, fb = OPERANDS[spec.dtype]
    a8, scale_a = quantize(backend, inputs["a"], fa, device)
    bt8, scale_b = quantize(backend, np.ascontiguousarray(inputs["b"].T), fb, device)
    b8 = bt8.t()  # K×N, column-major
    out_dtype = getattr(torch, params["out_dtype"])
    c = torch.empty((a8.shape[0], b8.shape[1]), dtype=out_dtype, device=a8.device)
    scaled_mm = torch._scaled_mm

    def call():
        scaled_mm(a8, b8, scale_a, scale_b, out_dtype=out_dtype, out=c)

    metrics = {"scale_a": float(scale_a), "scale_b": float(scale_b), "a_format": fa.name, "b_format": fb.name}
    return BoundOp(call=call, result=lambda: backend.download(c), timer=backend.timer(device), metrics=metrics)

"""JAX matmul: ``jnp.matmul`` compiled by XLA (Eigen on the CPU, cuBLAS on CUDA).

float32 runs at ``Precision.HIGHEST`` (true float32; JAX's default on Ampere and later GPUs is
TF32), or with the ``TF32_TF32_F32`` dot algorithm when the case sets ``tf32 = true`` (CUDA only).
float16 and bfloat16 products return their input dtype, accumulated in float32 by XLA.
"""

from __future__ import annotations

from gpubench.backends.base import BoundOp
from gpubench.backends.jax_backend import DeviceSlot


def build(backend, spec, params, inputs, device):
    """Compile ``C = A @ B`` for the case's shapes and bind one call of the executable."""
    jnp = backend.jax.numpy
    precision = backend.precision(spec.dtype, bool(params.get("tf32")))
    a = DeviceSlot(backend.upload(inputs["a"], device, spec.dtype), spec.dtype)
    b = DeviceSlot(backend.upload(inputs["b"], device, spec.dtype), spec.dtype)
    product = backend.compile(lambda x, y: jnp.matmul(x, y, precision=precision), a.value, b.value)
    out = DeviceSlot(None)
    keep = backend.keep

    def call():
        out.value = keep(device, product(a.value, b.value))

    return BoundOp(call=call, result=lambda: backend.download(out), timer=backend.timer(device),
                   device_inputs={"a": a, "b": b}, device_output=lambda: out.value,
                   metrics={"precision": str(precision) if precision is not None else "default"})

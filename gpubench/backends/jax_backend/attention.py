"""JAX attention: ``jax.nn.dot_product_attention``, one variant per ``implementation``, compiled at build.

Variants are the implementations JAX offers: ``xla`` (JAX's own composite, lowered by XLA: two
batched products and a float32 softmax, the S×S scores materialized, the causal mask applied as
a mask; on every platform) and ``cudnn`` (cuDNN's fused flash attention through a custom call;
CUDA only, float16/bfloat16, head dim a multiple of 8 up to 128, or 256 from Hopper on).
``implementation=None`` is not a third variant: JAX 0.10 resolves it to ``xla``.

* **Layout.** JAX takes B×S×H×D (its ``BTNH``), the workload B×H×S×D: the inputs are transposed
  once on the host at build time, and ``result`` transposes the outputs back; the timed call is
  the attention alone.
* **Backward.** With ``backward`` one executable computes O and ``jax.vjp`` of it applied to dO
  (dQ, dK, dV), forward and backward compiled together.
* **Compiled outside the timing.** ``jax.jit(f).lower(...).compile()`` at build (the backend's
  :meth:`~gpubench.backends.jax_backend.JaxBackend.compile`), then one run to allocate; every
  timed call runs the executable and is synchronized with ``block_until_ready`` on its outputs.
* **Precision.** JAX's composite passes no precision to its float32 products, so on Ampere and
  later GPUs they would run in TF32: a float32 case is traced under
  ``jax.default_matmul_precision("highest")`` (true float32, as every other JAX op here). In
  float16/bfloat16 JAX itself asks for float32 accumulation of the scores and computes the
  softmax in float32.
* **No float64.** The ``xla`` implementation computes the softmax in float32 whatever the input
  dtype (``_dot_product_attention_core``), which misses the float64 reference by ~1e-7, and
  ``cudnn`` takes 16-bit inputs only: a float64 case is skipped with that reason.
* **Refusals.** :func:`unsupported` lowers the case's exact computation for abstract arrays of
  its shape (no memory of the case's size) on its device, and for ``cudnn`` compiles it too; when
  JAX or XLA refuse, the case is skipped with JAX's words: on the CPU, float16 (``The precision
  'F16_F16_F32' is not supported by dot_general on CPU``: JAX's composite asks for that dot
  algorithm, which its CPU lowering rejects; the composite's fallback to the default precision
  catches only an eager call's error, not a jitted one's); for ``cudnn``, ``Q must be
  fp16/bf16/fp8_e4m3fn/fp8_e5m2, got float32``, ``The head dim must be <= 256 and a multiple of
  8``, ``cuDNN is not detected.``.
* **Memory.** ``peak_memory_bytes`` is what the compiled executable allocates beyond its
  arguments: its outputs plus its temporary buffers (XLA's buffer assignment, which already
  shares buffers whose lifetimes do not overlap), less outputs aliased to inputs, from
  ``Compiled.memory_analysis()``. Where the platform gives no analysis, ``peak_memory_note``
  says so.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from gpubench.backends.base import BoundOp

VARIANTS = ("xla", "cudnn")
VARIANT_DEVICE_KINDS = {"cudnn": ("cuda",)}

#: Why a float64 case is skipped (both implementations; see the module docstring).
FLOAT64_REASON = ("jax: jax.nn.dot_product_attention has no float64 attention: its xla implementation computes "
                  "the softmax in float32 whatever the input dtype (~1e-7 from a float64 reference), its cudnn "
                  "implementation takes float16/bfloat16 only")

#: Exceptions by which JAX (its checks, its lowering rules) or XLA (its compiler) refuse a case.
REFUSALS = (NotImplementedError, ValueError, RuntimeError)

#: The workload's B×H×S×D ↔ JAX's B×S×H×D (the permutation is its own inverse).
TO_JAX = (0, 2, 1, 3)


def attention_fn(jax: Any, implementation: str, causal: bool, backward: bool):
    """The function the executable computes: ``(q, k, v) -> O`` or ``(q, k, v, dO) -> (O, dQ, dK, dV)``, B×S×H×D."""
    sdpa = jax.nn.dot_product_attention

    def forward(q, k, v):
        return sdpa(q, k, v, is_causal=causal, implementation=implementation)

    if not backward:
        return forward

    def forward_backward(q, k, v, do):
        out, pullback = jax.vjp(forward, q, k, v)
        return (out, *pullback(do))

    return forward_backward


def precision_scope(jax: Any, dtype: str):
    """Where the attention is traced: true float32 products for a float32 case, JAX's defaults otherwise."""
    return jax.default_matmul_precision("highest") if dtype == "float32" else contextlib.nullcontext()


def _jax_shape(params: dict[str, Any]) -> tuple[int, int, int, int]:
    return params["b"], params["s"], params["h"], params["d"]


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (its type name when it has none)."""
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__


def refusal(backend, spec, params, device, compile_too: bool = False) -> str | None:
    """JAX's reason why ``spec.variant`` cannot run this case on ``device`` (traced, never run), or None.

    The case's exact computation is lowered for ``jax.ShapeDtypeStruct`` arrays of its shape and
    dtype placed on the device: JAX's checks and its lowering rules run, and nothing of the case's
    size is allocated. With ``compile_too`` XLA also compiles it for the device (for a custom call
    such as cuDNN's, whose compiler may refuse a configuration the checks let through).
    """
    jax = backend.jax
    sharding = jax.sharding.SingleDeviceSharding(backend.jax_device(device))
    arg = jax.ShapeDtypeStruct(_jax_shape(params), backend.jnp_dtype(spec.dtype), sharding=sharding)
    fn = attention_fn(jax, spec.variant, params["causal"], params["backward"])
    try:
        with precision_scope(jax, spec.dtype):
            lowered = jax.jit(fn).lower(*[arg] * (4 if params["backward"] else 3))
            if compile_too:
                lowered.compile()
    except REFUSALS as exc:
        return f"jax: the {spec.variant} attention cannot run this case on {device.id}: {first_line(exc)}"
    return None


def unsupported(backend, spec, params, device):
    """Why this case cannot run (float64: JAX has no float64 attention; else JAX's own words), or None.

    The probe costs a lowering (tens of milliseconds) for ``xla`` and a compilation for ``cudnn``.
    """
    if spec.dtype == "float64":
        return FLOAT64_REASON
    return refusal(backend, spec, params, device, compile_too=spec.variant == "cudnn")


def memory_metrics(compiled: Any) -> dict[str, Any]:
    """``peak_memory_bytes`` of a compiled executable (outputs + temporaries − aliased), or why it is unknown."""
    try:
        stats = compiled.memory_analysis()
    except Exception as exc:  # noqa: BLE001 - an analysis the platform lacks must not fail the case
        return {"peak_memory_note": f"not available: Compiled.memory_analysis() failed "
                                    f"({type(exc).__name__}: {first_line(exc)})"[:300]}
    if stats is None:
        return {"peak_memory_note": "not available: Compiled.memory_analysis() returned None on this platform"}
    output, temp = int(stats.output_size_in_bytes), int(stats.temp_size_in_bytes)
    alias = int(stats.alias_size_in_bytes)
    return {"peak_memory_bytes": output + temp - alias,
            "memory_method": "XLA's compiled memory analysis (Compiled.memory_analysis): output plus temporary "
                             "buffers of the executable, less outputs aliased to inputs",
            "xla_output_bytes": output, "xla_temp_bytes": temp}


def build(backend, spec, params, inputs, device):
    """Upload Q, K, V (and dO) as B×S×H×D, compile the variant's attention for them and bind one call."""
    jax = backend.jax
    backward, causal = params["backward"], params["causal"]
    names = ("q", "k", "v", "do") if backward else ("q", "k", "v")
    args = tuple(backend.upload(np.ascontiguousarray(inputs[n].transpose(TO_JAX)), device, spec.dtype)
                 for n in names)
    with precision_scope(jax, spec.dtype):
        executable = backend.compile(attention_fn(jax, spec.variant, causal, backward), *args)
    holder: list[Any] = [None]
    keep = backend.keep

    def call():
        holder[0] = keep(device, executable(*args))

    def result() -> np.ndarray:
        outs = holder[0] if backward else (holder[0],)
        arrays = [backend.download(x).transpose(TO_JAX) for x in outs]
        return arrays[0] if len(arrays) == 1 else np.stack(arrays)

    def close():
        holder.clear()

    metrics = {**memory_metrics(executable), "jax_implementation": spec.variant,
               "precision": "highest" if spec.dtype == "float32" else "JAX's (float32 accumulation and softmax)",
               "layout": "B×S×H×D (inputs transposed on the host at build)"}
    return BoundOp(call=call, result=result, timer=backend.timer(device), close=close, metrics=metrics)

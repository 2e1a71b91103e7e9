"""torch attention: ``F.scaled_dot_product_attention`` with one SDPA kernel forced per variant.

Variants are torch's SDPA kernels, forced with ``torch.nn.attention.sdpa_kernel``: ``flash``
(FlashAttention-2 on CUDA; torch's own blocked flash kernel on the CPU), ``efficient``
(xFormers' memory-efficient kernel), ``cudnn`` (cuDNN's fused attention) and ``math`` (the
unfused composite: two batched products and a softmax, the S×S matrix materialized). The CPU
build of torch has only the flash and math kernels (``select_sdp_backend_cpp``).

A kernel that cannot run a case is *skipped* with torch's own words: :func:`unsupported` runs
the case's kernel once on one head of the case's shape and dtype, with warnings recorded; when
torch refuses ("No viable backend for scaled_dot_product_attention was found" on the CPU, with
warnings such as "Flash attention kernel not used because: ..." on CUDA naming the failed
check), the reason is those messages.

The forced kernel stays selected from :func:`build` until the op's ``close`` (entering the
context in every timed call would add host overhead to small cases). With ``backward`` each
call is the forward pass and ``torch.autograd.grad`` of it for the upstream gradient dO.

Memory: the peak allocated during one call beyond what was allocated before it (outputs, saved
activations, gradients, workspace), from ``torch.cuda.max_memory_allocated`` on CUDA, and from
the profiler's record of the CPU allocator (``profile_memory=True``) on the CPU.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from gpubench.backends.base import BoundOp
from gpubench.errors import Unavailable

VARIANTS = ("flash", "efficient", "cudnn", "math")

#: Texts of torch's errors when the forced kernel cannot run (the CPU's, and CUDA's from sdp_utils.cpp).
REFUSALS = ("No viable backend for scaled_dot_product_attention", "No available kernel")

_SDP_NAMES = {"flash": "FLASH_ATTENTION", "efficient": "EFFICIENT_ATTENTION", "cudnn": "CUDNN_ATTENTION",
              "math": "MATH"}


def sdp_backend(variant: str):
    """The ``torch.nn.attention.SDPBackend`` member of a variant."""
    from torch.nn.attention import SDPBackend

    return getattr(SDPBackend, _SDP_NAMES[variant])


def refusal_reason(variant: str, device_id: str, error: BaseException, messages: list[str]) -> str | None:
    """The skip reason when ``error`` is torch refusing the forced kernel, else None.

    ``messages`` are the warnings torch emitted while choosing a kernel; they name the check that
    failed, and the generic "...not used because:" headers are folded into the sentence.
    """
    text = str(error).strip()
    if not any(r in text for r in REFUSALS):
        return None
    detail = " ".join(m.strip() for m in messages if m.strip())
    first = text.splitlines()[0]
    reason = f"torch: the {variant} SDPA kernel cannot run this case on {device_id}: "
    return reason + (f"{detail} ({first})" if detail else first)


def _run_recording(fn) -> tuple[Any, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return fn(), [str(w.message) for w in caught]
        except RuntimeError as exc:
            exc.sdpa_messages = [str(w.message) for w in caught]  # type: ignore[attr-defined]
            raise


def unsupported(backend, spec, params, device):
    """Why torch cannot run the variant's kernel on this case (its own words), or None.

    Runs the kernel once on one head of the case's S×D in its dtype (and its backward when the
    case has one): the kernel checks look at dtype, head size, device, mask and strides, not at
    the number of heads, so the probe answers for the case without its memory.
    """
    torch = backend.torch
    try:
        from torch.nn.attention import sdpa_kernel
    except ImportError:
        return f"torch: forcing an SDPA kernel needs torch.nn.attention.sdpa_kernel (torch >= 2.3), " \
               f"this is torch {torch.__version__}"
    dtype = backend.torch_dtype(spec.dtype)
    s, d, causal, backward = params["s"], params["d"], params["causal"], params["backward"]
    q, k, v = (torch.zeros((1, 1, s, d), dtype=dtype, device=device.id, requires_grad=backward) for _ in range(3))

    def probe():
        with sdpa_kernel(sdp_backend(spec.variant)):
            o = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
            if backward:
                torch.autograd.grad(o, (q, k, v), torch.ones_like(o))

    try:
        _run_recording(probe)
    except RuntimeError as exc:
        reason = refusal_reason(spec.variant, device.id, exc, getattr(exc, "sdpa_messages", []))
        if reason is None:
            raise
        return reason
    return None


def cpu_peak_bytes(torch, fn) -> int:
    """Peak bytes the CPU allocator held during ``fn()`` beyond what it held before (the profiler's memory events)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    current = peak = 0
    for e in sorted(events, key=lambda e: e.start_ns()):
        current += e.nbytes()
        peak = max(peak, current)
    return peak


def measure_peak(torch, device, fn) -> dict[str, Any]:
    """Run ``fn`` once and return the memory metrics of that call (or why they are not available)."""
    if device.kind == "cuda":
        torch.cuda.synchronize(device.id)
        torch.cuda.reset_peak_memory_stats(device.id)
        before = torch.cuda.memory_allocated(device.id)
        fn()
        torch.cuda.synchronize(device.id)
        return {"peak_memory_bytes": int(torch.cuda.max_memory_allocated(device.id) - before),
                "memory_method": "torch.cuda.max_memory_allocated during one call, less what was allocated before it"}
    try:
        peak = cpu_peak_bytes(torch, fn)
    except Exception as exc:  # noqa: BLE001 - a profiler that fails must not fail the case
        fn()
        return {"peak_memory_note": f"not available: the torch profiler's memory record failed "
                                    f"({type(exc).__name__}: {exc})"[:300]}
    return {"peak_memory_bytes": int(peak),
            "memory_method": "torch profiler (profile_memory=True): peak of the CPU allocator's allocations "
                             "during one call"}


def build(backend, spec, params, inputs, device):
    """Upload Q, K, V (and dO), select the variant's kernel and bind one attention call."""
    torch = backend.torch
    from torch.nn.attention import sdpa_kernel

    if device.kind == "cuda":
        torch.cuda.set_device(device.id)
    backward, causal = params["backward"], params["causal"]
    q, k, v = (backend.upload(inputs[name], device, spec.dtype) for name in ("q", "k", "v"))
    sdpa = torch.nn.functional.scaled_dot_product_attention
    holder: list[Any] = []
    if backward:
        for t in (q, k, v):
            t.requires_grad_(True)
        do = backend.upload(inputs["do"], device, spec.dtype)
        grad = torch.autograd.grad

        def call():
            o = sdpa(q, k, v, is_causal=causal)
            holder[:] = [o.detach(), *grad(o, (q, k, v), do)]
    else:
        def call():
            holder[:] = [sdpa(q, k, v, is_causal=causal)]

    def result() -> np.ndarray:
        arrays = [backend.download(t) for t in holder]
        return arrays[0] if len(arrays) == 1 else np.stack(arrays)

    selected = sdpa_kernel(sdp_backend(spec.variant))
    selected.__enter__()
    previous_tf32 = torch.backends.cuda.matmul.allow_tf32
    try:
        # float32 attention in true float32 (the math kernel's products go through cuBLAS).
        torch.backends.cuda.matmul.allow_tf32 = False
        metrics, _ = _run_recording(lambda: measure_peak(torch, device, call))
    except RuntimeError as exc:
        torch.backends.cuda.matmul.allow_tf32 = previous_tf32
        selected.__exit__(None, None, None)
        reason = refusal_reason(spec.variant, device.id, exc, getattr(exc, "sdpa_messages", []))
        if reason is None:
            raise
        raise Unavailable(reason) from exc
    except BaseException:
        torch.backends.cuda.matmul.allow_tf32 = previous_tf32
        selected.__exit__(None, None, None)
        raise
    metrics["sdpa_kernel"] = spec.variant

    def close():
        holder.clear()
        torch.backends.cuda.matmul.allow_tf32 = previous_tf32
        selected.__exit__(None, None, None)

    return BoundOp(call=call, result=result, timer=backend.timer(device), close=close, metrics=metrics)

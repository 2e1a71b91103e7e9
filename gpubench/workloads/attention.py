"""Scaled dot-product attention ``O = softmax(Q·Kᵀ/√D)·V``: the layer that dominates a transformer.

Shapes follow ``torch.nn.functional.scaled_dot_product_attention``: Q, K, V and O are B×H×S×D
(batch, heads, sequence length, head dimension), one head attends over its own S keys. With
``causal`` a query attends to the keys at or before its own position (the lower-triangular mask
of a decoder).

``backward`` adds the backward pass for an upstream gradient dO (drawn at random like the
inputs): one call computes O and then dQ, dK and dV, and the output checked is the four of them.
``causal`` and ``backward`` are part of the *problem*, not ``mode`` switches: each computes
something else (another mask, three more outputs), has its own FLOP count and its own float64
reference, and a speedup must compare a GPU case with the CPU case of the same problem (a mode
would be compared with the CPU's plain forward case).

FLOPs, the FlashAttention convention (its ``benchmark_flash_attention.py``):

* forward = 4·B·H·S²·D (Q·Kᵀ and P·V, 2·S²·D each per head), halved with ``causal``;
* backward = 2.5 × forward (five S²·D products: the recomputed Q·Kᵀ, dV = Pᵀ·dO, dP = dO·Vᵀ,
  dQ = dS·K and dK = dSᵀ·Q), so forward+backward = 3.5 × forward.

The count belongs to the problem, not to an implementation: a kernel that keeps P from the
forward pass (torch's math kernel, the NumPy and CuPy backends) does four products in its
backward, not five, and its rate is still this count over its time, so rates of one problem
compare as inverse times. The softmax's exponentials are not counted (as in FlashAttention).

A backend implements it with an op module ``<ops_package>.attention`` whose ``build`` returns a
:class:`~gpubench.ops.BoundOp` reading the B×H×S×D inputs ``q, k, v`` (and ``do``) and whose
``result`` is O, or O, dQ, dK, dV stacked on a new first axis (4×B×H×S×D). For the JAX backend
(another branch): ``jax.nn.dot_product_attention`` takes B×S×H×D (transpose the inputs once at
build time), its ``implementation`` (``"xla"``, ``"cudnn"``) maps onto variants, and the backward
is ``jax.vjp`` of it applied to dO, jitted together with the forward.

The float64 reference (:func:`attention_reference`) is the textbook formula, computed per head
over blocks of queries so that no S×S float64 matrix of a whole head is held at once
(``REF_BLOCK_BYTES`` per block): scores, row-max-shifted exponentials, their normalization,
``P·V``; for the backward ``dV += Pᵀ·dO``, ``dP = dO·Vᵀ``, ``dS = P∘(dP − rowsum(dO∘O))``,
``dQ = dS·K/√D``, ``dK += dSᵀ·Q/√D``.

Tolerance (relative norm error of each output, the largest of them is checked):

* the products accumulate over D (a score) and then over S (a weighted sum of values): the
  accumulation length is K = S + D. In float32 and float64 the bound is gpubench's usual
  ``1e-5·√K`` (``1e-13·√K``), which is ~100× the rounding error of a float32 accumulator;
* in float16/bfloat16 the error is set by rounding intermediates to the 16-bit storage type,
  not by the float32 accumulators: each rounding adds at most the unit roundoff u (2⁻⁸ for
  bfloat16, 2⁻¹¹ for float16) of relative error to what it rounds. The longest chain of such
  roundings behind one output is 3 in the forward pass (scores, probabilities, O) and 6 for
  forward+backward (those, then dP, dS and the gradient itself): the bound is that many u plus
  the float32 accumulation term ``1e-5·√K``. For bfloat16 that is 1.2e-2 forward and 2.4e-2
  forward+backward; for float16 1.8e-3 and 3.3e-3 at S = 1024, D = 64. (Measured with torch 2.13
  on the CPU: 0.4–0.9 u, kernels that keep intermediates in float32 being at the low end.)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gpubench.errors import UsageError
from gpubench.workloads.base import BASE_TOLERANCE, Param, Workload, host_dtype, random_array, relative_error

#: Largest float64 block of scores the reference holds at once (per intermediate).
REF_BLOCK_BYTES = 64 * 2**20

#: Unit roundoff of the 16-bit storage types (half the distance from 1 to the next number).
UNIT_ROUNDOFF = {"bfloat16": 2.0**-8, "float16": 2.0**-11}

#: Roundings to the storage type in the longest chain behind one output: forward, forward+backward.
ROUNDINGS = {False: 3, True: 6}

#: Backward FLOPs as a multiple of the forward's (FlashAttention's convention: 2.5×).
BACKWARD_FLOP_FACTOR = 2.5

#: Names of the outputs, in the order a forward+backward case returns them.
OUTPUTS = ("O", "dQ", "dK", "dV")


def itemsize(dtype: str) -> int:
    """Bytes per element of ``dtype`` on a device (bfloat16: 2, though the host keeps it in float32)."""
    return 2 if dtype in ("bfloat16", "float16") else host_dtype(dtype).itemsize


def reference_block_rows(s: int, block_bytes: int = REF_BLOCK_BYTES) -> int:
    """Queries per block of the reference: a block of float64 scores holds at most ``block_bytes``."""
    return max(1, min(s, block_bytes // (8 * s)))


def attention_reference(q: np.ndarray, k: np.ndarray, v: np.ndarray, causal: bool,
                        do: np.ndarray | None = None,
                        block_bytes: int = REF_BLOCK_BYTES) -> tuple[np.ndarray, ...]:
    """``O`` (and ``dQ, dK, dV`` for the upstream gradient ``do``) in float64, head by head, block by block.

    ``q, k, v`` (and ``do``) are B×H×S×D. Each block of queries is a float64 matrix of at most
    ``block_bytes`` (a few of them are alive at once), so S = 8192 never needs an S×S matrix.
    """
    b, h, s, d = q.shape
    scale = 1.0 / math.sqrt(d)
    rows = reference_block_rows(s, block_bytes)
    out = np.empty((b, h, s, d))
    grads = None if do is None else (np.empty((b, h, s, d)), np.zeros((b, h, s, d)), np.zeros((b, h, s, d)))
    keys = np.arange(s)
    for bi in range(b):
        for hi in range(h):
            qh, kh, vh = (x[bi, hi].astype(np.float64) for x in (q, k, v))
            doh = None if do is None else do[bi, hi].astype(np.float64)
            for i0 in range(0, s, rows):
                i1 = min(s, i0 + rows)
                scores = (qh[i0:i1] @ kh.T) * scale
                if causal:
                    scores[keys[None, :] > np.arange(i0, i1)[:, None]] = -np.inf
                scores -= scores.max(axis=1, keepdims=True)
                p = np.exp(scores)
                del scores
                p /= p.sum(axis=1, keepdims=True)
                o = p @ vh
                out[bi, hi, i0:i1] = o
                if grads is not None:
                    dq, dk, dv = grads
                    g = doh[i0:i1]
                    dv[bi, hi] += p.T @ g
                    dp = g @ vh.T
                    dp -= np.sum(g * o, axis=1, keepdims=True)
                    dp *= p  # dS: masked entries have p = 0
                    dq[bi, hi, i0:i1] = (dp @ kh) * scale
                    dk[bi, hi] += (dp.T @ qh[i0:i1]) * scale
    return (out,) if grads is None else (out, *grads)


class AttentionWorkload(Workload):
    """``softmax(Q·Kᵀ/√D)·V`` over B×H heads of S×D; forward or forward+backward; causal or not."""

    name = "attention"
    unit = "gflops"
    report_section = "attention"
    description = "scaled dot-product attention softmax(Q·Kᵀ/√D)·V (B, H, S, D; causal; forward or +backward)"
    params = {
        "b": Param(int, default=1),
        "h": Param(int),
        "s": Param(int),
        "d": Param(int),
        "causal": Param(bool, default=False, minimum=None),
        "backward": Param(bool, default=False, minimum=None),
    }

    def normalize_params(self, params: dict[str, Any]) -> dict[str, Any]:
        missing = [key for key in ("h", "s", "d") if key not in params]
        if missing:
            raise UsageError(f"attention: missing parameter {', '.join(missing)}")
        return super().normalize_params(params)

    @staticmethod
    def shape(params: dict[str, Any]) -> tuple[int, int, int, int]:
        """``(B, H, S, D)`` of Q, K, V and O."""
        return params["b"], params["h"], params["s"], params["d"]

    def make_inputs(self, params, dtype, rng):
        shape = self.shape(params)
        names = ("q", "k", "v", "do") if params["backward"] else ("q", "k", "v")
        return {name: random_array(rng, shape, dtype) for name in names}

    def reference(self, inputs, params):
        outs = attention_reference(inputs["q"], inputs["k"], inputs["v"], params["causal"], inputs.get("do"))
        return outs[0] if len(outs) == 1 else np.stack(outs)

    def forward_flops(self, params: dict[str, Any]) -> float:
        """4·B·H·S²·D, halved for a causal mask."""
        b, h, s, d = self.shape(params)
        return 4.0 * b * h * s * s * d / (2 if params["causal"] else 1)

    def flops(self, params):
        factor = 1 + BACKWARD_FLOP_FACTOR if params["backward"] else 1
        return self.forward_flops(params) * factor

    def bytes_moved(self, params, dtype):
        b, h, s, d = self.shape(params)
        # Forward: Q, K, V read and O written; backward adds dO read and dQ, dK, dV written.
        arrays = 8 if params["backward"] else 4
        return float(arrays * b * h * s * d * itemsize(dtype))

    def memory_bytes(self, params, dtype):
        """Host inputs, the float64 reference and the check, plus an unfused kernel's S×S matrices.

        The last term is what torch's math kernel materializes (on the host for a CPU case, on
        the device for a GPU case): scores and probabilities for every head, at float32 or
        wider (it computes 16-bit inputs in float32), twice that with the backward. Fused
        kernels (flash, efficient, cudnn, the blocked NumPy and CuPy backends) need far less,
        so for them this is an upper bound.
        """
        b, h, s, d = self.shape(params)
        n = b * h * s * d
        backward = params["backward"]
        outputs = 4 if backward else 1
        inputs = (4 if backward else 3) * n * host_dtype(dtype).itemsize
        block = reference_block_rows(s) * s * 8
        reference = outputs * n * 8 + 4 * s * d * 8 + (4 if backward else 2) * block
        # The op's result as a host array (float64 at most), its float64 copy and the difference.
        check = 3 * outputs * n * 8
        unfused = b * h * s * s * max(itemsize(dtype), 4) * (4 if backward else 2)
        return int(inputs + reference + check + unfused)

    def device_bytes(self, params, dtype):
        """Q, K, V (and dO), the outputs, and the unfused kernel's S×S matrices (an upper bound for fused
        kernels; on a CPU they are also in :meth:`memory_bytes`, so a CPU case's total is an upper bound)."""
        b, h, s, d = self.shape(params)
        n = b * h * s * d
        backward = params["backward"]
        arrays = (4 if backward else 3) + (4 if backward else 1)
        unfused = b * h * s * s * max(itemsize(dtype), 4) * (4 if backward else 2)
        return int(arrays * n * host_dtype(dtype).itemsize + unfused)

    def accumulation_length(self, params):
        return params["s"] + params["d"]

    def tolerance(self, params, dtype):
        accumulation = math.sqrt(self.accumulation_length(params))
        if dtype in UNIT_ROUNDOFF:
            return ROUNDINGS[params["backward"]] * UNIT_ROUNDOFF[dtype] + BASE_TOLERANCE["float32"] * accumulation
        return BASE_TOLERANCE.get(dtype, BASE_TOLERANCE["float32"]) * accumulation

    def check(self, out, ref, params, dtype):
        """The largest relative error among the outputs (O; with the backward also dQ, dK and dV)."""
        tol = self.tolerance(params, dtype)
        out = np.asarray(out)
        if out.shape != ref.shape:
            return math.inf, tol
        if params["backward"]:
            return max(relative_error(out[i], ref[i]) for i in range(len(OUTPUTS))), tol
        return relative_error(out, ref), tol

    def describe(self, params):
        b, h, s, d = self.shape(params)
        text = f"{b}×{h}×{s}×{d}"
        if params["causal"]:
            text += " causal"
        if params["backward"]:
            text += " fwd+bwd"
        return text

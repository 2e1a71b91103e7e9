"""Freivalds' check of a matrix product in O(n²): ``C·X`` against ``A·(B·X)`` in float64.

The full check of a product ``C ≈ R = A·B`` (A: M×K, B: K×N) computes ``R`` in float64 — 2·M·N·K
FLOPs, as much arithmetic as the product it checks, on the host. Freivalds' method looks at the
product through ``r`` random vectors instead: with X an N×r matrix of independent standard normal
numbers, ``R·X = A·(B·X)`` costs 2·r·(K·N + M·K) FLOPs and ``C·X`` 2·r·M·N, so the check is O(n²)
(at 4096³ and r = 32 about 40× less arithmetic, and no M×N float64 matrix is ever made).

**What it computes.** With ``E = C − R`` (the error of the output), the full check's relative
error is ``e = ‖E‖_F / ‖R‖_F``; the projected one is

    ρ = ‖C·X − A·(B·X)‖_F / (√r · ‖C‖_F) = e · √Q · ‖R‖_F / ‖C‖_F,   Q = ‖E·X‖_F² / (r · ‖E‖_F²).

For Gaussian X, ``E[Q] = 1`` and ``Q = Σᵢ wᵢ · χ²_r,ᵢ / r``: independent χ²_r/r variables averaged
with the weights ``wᵢ = σᵢ² / Σσ²`` (σᵢ the singular values of E). The denominator ‖C‖_F is exact
(no randomness) and within a factor ``1 ± e`` of ‖R‖_F, so

    e · √Q / (1 + e)  ≤  ρ  ≤  e · √Q / (1 − e).

The case passes when ``ρ`` is under the workload's usual tolerance, the one the full check uses:

* **A correct result passes.** Rounding errors are spread over the whole matrix (E has a large
  stable rank ``‖E‖_F²/‖E‖₂²``, thousands at n = 4096), so Q averages thousands of χ² terms and is
  1 within about ``√(2 / (r · stable rank))`` — ρ is the full check's error to within a percent or
  so (the tests measure this on real float32, TF32, bfloat16 and float16 products). Even in the
  worst case, an error of rank one, a result whose full error is a factor c under the tolerance
  fails only when χ²_r > r·c²: for r = 32, probability 2e-13 at c = 2 (6.5e-5 at c = 1.5).
* **A wrong result fails.** A non-finite output (NaN, inf) fails outright. Otherwise the least
  concentrated Q — the one most likely to hide an error — belongs to an error of rank one (one
  wrong element, one wrong row or column): then Q is exactly χ²_r/r, and a result whose full
  error is c times the tolerance passes with probability ``P(χ²_r < r·(1+e)²/c²)``. For r = 32:
  4.9e-6 at c = 2, 9e-11 at c = 3, below 1e-26 at c = 10. Spreading the same error over more
  singular directions concentrates Q and only lowers these odds.

The error of one wrong element is judged as the full check judges it: the full check itself
rejects it only when it moves ‖C − R‖_F past the tolerance times ‖R‖_F (a single element of a
4096² float32 product must be off by about 56, the typical element being about 21).

The vectors are drawn from the problem's seed, so a case's check is repeatable. The float64
products add their own rounding, about 1e-16·√K relative — far below every tolerance, float64's
1e-13·√K included.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Random vectors per check (r). 32 keeps a wrong result's worst-case pass probability at 5e-6 for an
#: error twice the tolerance; the check stays O(n²) (at 4096³, about 40× less arithmetic than the full one).
VECTORS = 32
#: Largest float64 block a conversion holds at once.
BLOCK_BYTES = 32 * 2**20
#: Stream of the problem's seed the vectors come from (distinct from the inputs' stream).
_STREAM = 0x46524549


@dataclass(frozen=True)
class Projection:
    """A product's reference seen through random vectors: ``x`` (N×r) and ``rx = A·(B·x)`` (M×r), float64.

    :meth:`relative_error` turns an output C into the projected relative error ρ (module docstring).
    """

    x: np.ndarray
    rx: np.ndarray
    method: str = "freivalds"

    @property
    def shape(self) -> tuple[int, int]:
        """The shape the checked output must have, ``(M, N)``."""
        return self.rx.shape[0], self.x.shape[0]

    @property
    def nbytes(self) -> int:
        return int(self.x.nbytes + self.rx.nbytes)

    def relative_error(self, out: np.ndarray) -> float:
        """ρ = ‖C·x − rx‖_F / (√r·‖C‖_F): inf for a wrong shape or a non-finite output."""
        out = np.asarray(out)
        if out.shape != self.shape:
            return math.inf
        cx, sumsq = dot64(out, self.x, with_sumsq=True)
        if not (math.isfinite(sumsq) and np.isfinite(cx).all()):
            return math.inf
        num = float(np.linalg.norm(cx - self.rx))
        if sumsq == 0:
            return 0.0 if num == 0 else math.inf
        return num / math.sqrt(self.x.shape[1] * sumsq)


def dot64(m: np.ndarray, x: np.ndarray, with_sumsq: bool = False, block_bytes: int = BLOCK_BYTES):
    """``m @ x`` in float64 for any real ``m`` (converted block by block, never whole), and ``‖m‖_F²`` if asked.

    Returns the product, or ``(product, sum of squares)`` with ``with_sumsq``.
    """
    m = np.asarray(m)
    x = np.asarray(x, dtype=np.float64)
    rows, cols = m.shape
    out = np.empty((rows, x.shape[1]))
    sumsq = 0.0
    step = max(1, block_bytes // max(8 * cols, 1))
    for i0 in range(0, rows, step):
        block = m[i0:i0 + step]
        if block.dtype != np.float64:
            block = block.astype(np.float64)
        np.matmul(block, x, out=out[i0:i0 + step])
        if with_sumsq:
            flat = block.reshape(-1)
            sumsq += float(np.dot(flat, flat))
    return (out, sumsq) if with_sumsq else out


def vectors(n: int, seed: int, r: int = VECTORS) -> np.ndarray:
    """The N×r standard normal vectors of a problem (float64), from its seed."""
    return np.random.default_rng([seed, _STREAM]).standard_normal((n, r))


def project(a: np.ndarray, b: np.ndarray, seed: int, r: int = VECTORS) -> Projection:
    """The :class:`Projection` of ``A·B`` through ``r`` vectors drawn from ``seed``: ``x`` and ``A·(B·x)``."""
    x = vectors(b.shape[1], seed, r)
    return Projection(x, dot64(a, dot64(b, x)))

"""Collective communication across N ranks (all_reduce, all_gather, broadcast), measured like nccl-tests.

One workload per collective, as nccl-tests has one program per collective (``all_reduce_perf``,
``all_gather_perf``, ``broadcast_perf``): each gets its own report section and chart, and a
speedup is only ever taken between cases of the same collective.

**Sizes** follow nccl-tests: ``bytes`` is the size ``S`` of the buffer each rank holds for
``all_reduce`` and ``broadcast`` (root 0), and the size of the *gathered output* for
``all_gather`` (each rank contributes ``S / n``).

**Bandwidths** (nccl-tests' ``PERFORMANCE.md``), with ``t`` the time of one collective:

* algorithm bandwidth ``algbw = S / t``;
* bus bandwidth ``busbw = algbw · f``: ``f = 2(n−1)/n`` for all_reduce, ``(n−1)/n`` for all_gather,
  ``1`` for broadcast. ``S · f`` is the least each rank's link must carry in one collective, so
  busbw is the figure to compare with the hardware's link bandwidth, whatever ``n`` is.

:meth:`CollectiveWorkload.bytes_moved` is that bus byte count, so the record's GB/s (the tables'
and the report's headline rate) *is* busbw — as the transfer workload's d2d GB/s counts the read
and the write. ``metrics`` carries ``busbw_gbps``, ``algbw_gbps``, ``time_us`` (the median time
of one collective: the latency at small sizes), ``size_bytes``, ``ranks``, ``bus_factor`` and the
communication backend.

**Timing** is the ranks' own (``self_timed``): one collective spans several processes, so the
harness's per-call loop cannot time it. Each rank waits at a barrier, then times one collective
(CUDA events on a GPU, ``perf_counter`` on the CPU); per iteration the case's sample is the
**maximum over the ranks** (a collective is finished when its slowest rank is, and nccl-tests'
per-iteration report takes the same maximum). The ranks reduce their times with the collective
backend itself, so all of them see the same samples and stop together under the harness's rules
(warm-up, at least ``min_samples``, the median's interval, the time budget).

**Correctness** is exact: rank ``r`` holds small integers :func:`rank_values` (its own random
table of :data:`PERIOD` values drawn from the case's seed, repeated) that every dtype represents
exactly and whose sum over the ranks stays exact in any order. Each rank compares every element
of its output with the expected integers (:func:`segments`), and returns the count of wrong
elements and a position-weighted float64 checksum of its output; the parent compares the
checksums with the NumPy float64 reference (:meth:`CollectiveWorkload.reference`). One wrong
element makes the case ``incorrect``.

A backend supplies a :class:`CollectiveSession` (the group of ranks, launched and ready); the
workload wraps it into the op the case path calls (:meth:`CollectiveWorkload.bind`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gpubench.errors import Unavailable, UsageError
from gpubench.harness import HarnessSettings, HostTimer, Measurement
from gpubench.ops import BoundOp
from gpubench.stats import summarize
from gpubench.workloads.base import Param, Workload
from gpubench.workloads.transfer import format_bytes

#: The collectives, each a workload of its own.
COLLECTIVES = ("all_reduce", "all_gather", "broadcast")

#: Largest buffer a case may ask for (the suite stops at 1 GiB).
MAX_BYTES = 2**32

#: Largest integer each dtype represents exactly, with every integer below it.
EXACT_INTEGER = {"float64": 2**53, "float32": 2**24, "float16": 2**11, "bfloat16": 2**8}

#: Bytes per element as the ranks hold them (bfloat16 is 2 bytes on the device, unlike its host copies).
ITEMSIZE = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2}

#: Largest magnitude of one rank's value (smaller where the dtype or the rank count demands).
MAX_VALUE = 8

#: Elements per chunk when expected values are generated (bounds the temporary memory).
CHUNK = 1 << 22

#: Period of each rank's data, in elements: a prime, so that no offset a collective could
#: plausibly get wrong (a power of two, a rank's block) maps the pattern onto itself.
PERIOD = 65521

#: Default time limit of each step of a case inside the ranks (launch, verification, timing).
DEFAULT_TIMEOUT_S = 300.0


def bus_factor(collective: str, ranks: int) -> float:
    """nccl-tests' bus-bandwidth factor: busbw = algbw · factor."""
    if collective == "all_reduce":
        return 2.0 * (ranks - 1) / ranks
    if collective == "all_gather":
        return (ranks - 1) / ranks
    if collective == "broadcast":
        return 1.0
    raise ValueError(f"unknown collective {collective!r}")


def value_bound(dtype: str, ranks: int) -> int:
    """Largest |value| a rank holds so that the sum over ``ranks`` ranks is exact in ``dtype`` (0: impossible)."""
    return min(MAX_VALUE, EXACT_INTEGER[dtype] // ranks)


def rank_table(seed: int, rank: int, bound: int) -> np.ndarray:
    """One period of rank ``rank``'s data: :data:`PERIOD` integers in [−bound, bound] drawn from (seed, rank)."""
    return np.random.default_rng([seed, rank]).integers(-bound, bound + 1, PERIOD, dtype=np.int64)


def rank_values(index: np.ndarray, rank: int, seed: int, bound: int) -> np.ndarray:
    """The integers rank ``rank`` holds at elements ``index``: its table repeated (``table[index % PERIOD]``)."""
    return rank_table(seed, rank, bound)[np.asarray(index, dtype=np.int64) % PERIOD]


def checksum_weights(index: np.ndarray) -> np.ndarray:
    """Position weights of the output checksum (1..7), so a permuted output does not pass."""
    return index % 7 + 1


@dataclass(frozen=True)
class Layout:
    """Element counts of one rank's buffers for one case."""

    collective: str
    ranks: int
    count: int
    """Elements of the output each rank checks (the gathered output for all_gather)."""
    send_count: int
    """Elements each rank sends (``count / ranks`` for all_gather, else ``count``)."""


def layout(collective: str, params: dict[str, Any], dtype: str) -> Layout:
    """The buffers of a case; :class:`UsageError` for an unknown dtype or bytes that do not split per rank."""
    if dtype not in ITEMSIZE:
        raise UsageError(f"{collective}: dtype {dtype} is not supported (float64, float32, float16, bfloat16)")
    return layout_of(collective, params, ITEMSIZE[dtype])


def layout_of(collective: str, params: dict[str, Any], itemsize: int) -> Layout:
    """:func:`layout` from the element size."""
    nbytes, ranks = params["bytes"], params["ranks"]
    unit = itemsize * (ranks if collective == "all_gather" else 1)
    if nbytes % unit:
        what = f"{ranks} ranks × {itemsize}-byte elements" if collective == "all_gather" else \
            f"{itemsize}-byte elements"
        raise UsageError(f"{collective}: bytes = {nbytes} does not split into {what}")
    count = nbytes // itemsize
    return Layout(collective, ranks, count, count // ranks if collective == "all_gather" else count)


def segments(lay: Layout, seed: int, bound: int) -> list[tuple[int, int, np.ndarray]]:
    """The correct output of every rank as ``(start, length, table)``: ``out[start + j] = table[j % PERIOD]``."""
    if lay.collective == "all_reduce":
        return [(0, lay.count, sum(rank_table(seed, r, bound) for r in range(lay.ranks)))]
    if lay.collective == "all_gather":
        return [(r * lay.send_count, lay.send_count, rank_table(seed, r, bound)) for r in range(lay.ranks)]
    return [(0, lay.count, rank_table(seed, 0, bound))]


def expected_checksum(lay: Layout, seed: int, bound: int) -> float:
    """Float64 checksum Σ out[i]·w(i) of the correct output of every rank (NumPy; exact: all integers < 2**53).

    Both the data (period :data:`PERIOD`) and the weights (period 7) repeat, so a segment's sum is a
    whole number of joint periods plus a remainder: O(PERIOD) work whatever the buffer's size.
    """
    total = 0
    joint = math.lcm(PERIOD, 7)
    for start, length, table in segments(lay, seed, bound):
        j = np.arange(min(length, joint), dtype=np.int64)
        terms = table[j % PERIOD] * checksum_weights(start + j)
        whole, rest = divmod(length, joint)
        total += whole * int(terms.sum()) + int(terms[:rest].sum())
    return float(total)


@dataclass(frozen=True)
class RankTiming:
    """What the ranks measured: per-iteration times already reduced (max) over the ranks."""

    samples: tuple[float, ...]
    host_samples: tuple[float, ...] = ()
    warmup_calls: int = 0
    target_met: bool = False
    elapsed_s: float = 0.0


class CollectiveSession:
    """A backend's group of ranks for one collective case, launched and connected.

    :meth:`verify` runs the collective once on fresh inputs and returns, per rank, the number of
    wrong output elements and the output's checksum; :meth:`time` runs the warm-up and timed
    iterations under ``settings`` and returns the samples; :meth:`close` ends every rank (it must
    leave no process behind, whatever state the ranks are in).
    """

    #: The clock of the samples (``perf_counter`` or ``cuda_event``).
    clock: str = "perf_counter"
    #: The communication backend (``gloo``, ``nccl``) and how the ranks were launched.
    info: dict[str, Any] = {}
    sources: dict[str, str] = {}

    def verify(self) -> np.ndarray:
        """One collective on fresh inputs; ``(ranks, 2)`` float64 array: wrong elements, output checksum."""
        raise NotImplementedError

    def time(self, settings: HarnessSettings) -> RankTiming:
        """Warm-up and timed iterations in the ranks."""
        raise NotImplementedError

    def close(self) -> None:
        """End every rank."""


@dataclass
class CollectiveOp(BoundOp):
    """The op of a collective case: ``call`` verifies once, ``result`` is the last verification."""

    session: CollectiveSession | None = None
    params: dict[str, Any] = field(default_factory=dict)
    last: np.ndarray | None = None


def session_op(session: CollectiveSession, params: dict[str, Any], not_run: str) -> CollectiveOp:
    """A rank group's session as the one-call op of its case: ``call`` runs ``session.verify()`` (kept as
    ``last``), ``result`` returns it (``RuntimeError(not_run)`` before any call); the ranks time themselves."""
    bound = CollectiveOp(call=lambda: None, result=lambda: np.zeros((0, 0)), timer=HostTimer(),
                         close=session.close, sources=dict(session.sources), session=session, params=dict(params))

    def call() -> np.ndarray:
        bound.last = session.verify()
        return bound.last

    def result() -> np.ndarray:
        if bound.last is None:
            raise RuntimeError(not_run)
        return bound.last

    bound.call, bound.result = call, result
    bound.metrics.update(session.info)
    return bound


@dataclass(frozen=True)
class CollectiveMeasurement(Measurement):
    """A :class:`~gpubench.harness.Measurement` with host-clock times beside device-clock samples."""

    host_samples: tuple[float, ...] = ()


class CollectiveWorkload(Workload):
    """Base of the three collectives; subclasses set ``name`` (one of :data:`COLLECTIVES`)."""

    unit = "gbps"
    self_timed = True
    params = {
        "bytes": Param(int),
        "ranks": Param(int, None, minimum=2, mode=True, match_reference=True, tag="ranks"),
        # Set only where it is not the default, so that the suite's specs stay plain: one node, and
        # DEFAULT_TIMEOUT_S for each step of a case inside the ranks (launch, verification, timing).
        "nodes": Param(int, None, minimum=1, mode=True, match_reference=True, tag="nodes"),
        "timeout_s": Param(float, None, mode=True, tag="timeout_s"),
    }
    #: The ranks (and how they spread over nodes) lay the data out: part of the problem.
    answer_modes = ("ranks", "nodes")

    def normalize_params(self, params: dict[str, Any]) -> dict[str, Any]:
        if "bytes" not in params:
            raise UsageError(f"{self.name}: missing parameter bytes")
        out = super().normalize_params(params)
        # Always in the spec (and so in every label): a 2-rank and an 8-rank result never mix.
        out.setdefault("ranks", 2)
        if out["bytes"] > MAX_BYTES:
            raise UsageError(f"{self.name}: bytes must be <= {MAX_BYTES} (4 GiB), got {out['bytes']}")
        if out["ranks"] % out.get("nodes", 1):
            raise UsageError(f"{self.name}: ranks = {out['ranks']} does not split over nodes = {out['nodes']}")
        if not out.get("timeout_s", DEFAULT_TIMEOUT_S) > 0:
            raise UsageError(f"{self.name}: timeout_s must be positive, got {out['timeout_s']}")
        return out

    def make_inputs(self, params, dtype, rng):
        """The data seed and the value bound (the ranks generate their own values: nothing large crosses processes)."""
        layout(self.name, params, dtype)
        bound = value_bound(dtype, params["ranks"])
        if bound < 1:
            raise Unavailable(f"{self.name}: {dtype} cannot hold the sum over {params['ranks']} ranks exactly")
        return {"seed": np.array([int(rng.integers(0, 2**31))], dtype=np.int64),
                "bound": np.array([bound], dtype=np.int64),
                "itemsize": np.array([ITEMSIZE[dtype]], dtype=np.int64)}

    def reference(self, inputs, params):
        """Per rank: 0 wrong elements and the float64 checksum of the correct output (NumPy)."""
        lay = layout_of(self.name, params, int(inputs["itemsize"][0]))
        checksum = expected_checksum(lay, int(inputs["seed"][0]), int(inputs["bound"][0]))
        return np.array([[0.0, checksum]] * lay.ranks)

    def check(self, out, ref, params, dtype):
        """Exact: the fraction of wrong elements over all ranks (1.0 when a checksum disagrees), tolerance 0."""
        out = np.asarray(out, dtype=np.float64)
        if out.shape != ref.shape or not np.all(np.isfinite(out)):
            return math.inf, 0.0
        lay = layout(self.name, params, dtype)
        wrong = float(out[:, 0].sum()) / (lay.count * lay.ranks)
        if wrong == 0 and np.any(out[:, 1] != ref[:, 1]):
            wrong = 1.0  # a rank passed its own check, but its output is not the reference's
        return wrong, 0.0

    def tolerance(self, params, dtype):
        return 0.0

    def bytes_moved(self, params, dtype):
        """nccl-tests' bus bytes ``S · factor``: the least each rank's link carries, so GB/s is busbw."""
        return float(params["bytes"] * bus_factor(self.name, params["ranks"]))

    def memory_bytes(self, params, dtype):
        lay = layout(self.name, params, dtype)  # rejects a size that does not split, at suite expansion
        itemsize = params["bytes"] // lay.count
        ranks_here = params["ranks"] // params.get("nodes", 1)
        per_rank = {"all_reduce": 2 * lay.count, "all_gather": lay.count + lay.send_count,
                    "broadcast": lay.count}[self.name] * itemsize
        # Each rank's buffers and the chunks of its check; the reference's chunks (int64) in the worker.
        return int(ranks_here * (per_rank + 3 * CHUNK * 8) + 4 * CHUNK * 8)

    def device_bytes(self, params, dtype):
        """One rank's buffers on its device (on a CPU also counted, for every rank here, in :meth:`memory_bytes`)."""
        lay = layout(self.name, params, dtype)
        itemsize = params["bytes"] // lay.count
        return int({"all_reduce": 2 * lay.count, "all_gather": lay.count + lay.send_count,
                    "broadcast": lay.count}[self.name] * itemsize)

    def describe(self, params):
        return format_bytes(params["bytes"])

    # --- running ------------------------------------------------------------------------------
    def bind(self, op: CollectiveSession, params, dtype):
        """The backend's :class:`CollectiveSession` as a one-call op (the call verifies; the ranks time)."""
        return session_op(op, params, f"{self.name}: no collective was run before result()")

    def measurement(self, op: CollectiveOp, settings: HarnessSettings) -> Measurement:
        """Warm-up and timed iterations in the ranks; samples are the per-iteration maximum over the ranks."""
        start = time.perf_counter()
        params = op.params
        if op.last is not None and np.any(op.last[:, 0] != 0):
            raise RuntimeError(f"{self.name}: the collective's output was wrong; not timing it")
        t = op.session.time(settings)
        samples = tuple(max(float(s), 1e-12) for s in t.samples)
        if not samples:
            raise RuntimeError(f"{self.name}: the ranks returned no samples")
        host = tuple(max(float(s), 1e-12) for s in t.host_samples)
        med = summarize(list(samples)).median
        algbw = params["bytes"] / med / 1e9
        factor = bus_factor(self.name, params["ranks"])
        op.metrics.update({
            "size_bytes": params["bytes"], "ranks": params["ranks"], "nodes": params.get("nodes", 1),
            "bus_factor": factor, "time_us": med * 1e6, "algbw_gbps": algbw, "busbw_gbps": algbw * factor,
            "iterations": len(samples), "warmup_iterations": t.warmup_calls,
            "rank_reduction": "max over ranks per iteration",
        })
        return CollectiveMeasurement(samples, 1, op.session.clock, t.target_met, t.warmup_calls,
                                     time.perf_counter() - start, host_samples=host)


class AllReduceWorkload(CollectiveWorkload):
    """all_reduce (sum) of an ``S``-byte buffer on every rank."""

    name = "all_reduce"
    description = "all_reduce (sum) across ranks: algbw, busbw = algbw·2(n−1)/n, latency (torch.distributed)"


class AllGatherWorkload(CollectiveWorkload):
    """all_gather of ``S / n`` bytes from each rank into an ``S``-byte output on every rank."""

    name = "all_gather"
    description = "all_gather across ranks (S = gathered output): algbw, busbw = algbw·(n−1)/n, latency"


class BroadcastWorkload(CollectiveWorkload):
    """broadcast of an ``S``-byte buffer from rank 0 to every rank."""

    name = "broadcast"
    description = "broadcast from rank 0: algbw, busbw = algbw, latency (torch.distributed)"

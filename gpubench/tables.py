"""Plain-text tables and human-readable numbers for the terminal."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def fmt_time(seconds: float | None) -> str:
    """``1.23 ms``-style time (``-`` for None)."""
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if seconds >= scale or unit == "ns":
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds:.3g} s"  # pragma: no cover


def fmt_rate(row: dict[str, Any]) -> str:
    """The headline rate of a row: GFLOP/s (TFLOP/s when large) or GB/s, by the workload's unit."""
    if row.get("gbps") and (row.get("unit") == "gbps" or not row.get("gflops")):
        return f"{row['gbps']:.3g} GB/s"
    if row.get("gflops"):
        g = row["gflops"]
        return f"{g / 1000:.3g} TFLOP/s" if g >= 1000 else f"{g:.3g} GFLOP/s"
    if row.get("gbps"):
        return f"{row['gbps']:.3g} GB/s"
    return "-"


def fmt_bytes(n: float | None) -> str:
    """``1.5 GiB``-style size."""
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.3g} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return str(n)  # pragma: no cover


def render(headers: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[int] = ()) -> str:
    """Render a table with a header rule; columns in ``right`` are right-aligned."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()

    out = [line(cells[0]), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells[1:]]
    return "\n".join(out)


def results_table(rows: list[dict[str, Any]]) -> str:
    """The summary table of a run (rows from :func:`gpubench.export.result_rows`)."""
    from gpubench.workloads import size_text

    body = []
    for r in rows:
        size = size_text(r["workload"], r["params"])
        backend = r["implementation"]
        ci = ""
        if r["median_s"]:
            half = (r["ci95_high_s"] - r["ci95_low_s"]) / 2 / r["median_s"] * 100
            ci = f"±{half:.1f}%"
        speed = f"{r['speedup']:.2f}×" if r["speedup"] is not None else "-"
        shown = [f for f in ("noisy", "busy", "throttled") if f in (r.get("flags") or ())]
        if r["status"] == "ok" and r["target_met"] is False and "noisy" not in shown:
            shown.insert(0, "noisy")
        note = r["error"][:70] if r["status"] != "ok" else " ".join(shown)
        body.append([r["workload"], size, backend, r["device"], r["dtype"], r["status"],
                     fmt_time(r["median_s"]), ci, fmt_rate(r), speed, note])
    return render(["workload", "size", "backend", "device", "dtype", "status", "median", "95% CI", "rate",
                   "speedup", "note"], body, right=(6, 7, 8, 9))

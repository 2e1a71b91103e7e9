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
    """A row's headline rate (:mod:`gpubench.rows`: ``rate`` in ``rate_unit``): GFLOP/s (TFLOP/s, PFLOP/s when
    large) or GB/s; ``-`` without one."""
    rate = row.get("rate")
    if not rate:
        return "-"
    if row.get("rate_unit") == "gbps":
        return f"{rate:.3g} GB/s"
    if rate >= 1e6:
        return f"{rate / 1e6:.3g} PFLOP/s"
    return f"{rate / 1000:.3g} TFLOP/s" if rate >= 1000 else f"{rate:.3g} GFLOP/s"


def fmt_speedup(value: float | None) -> str:
    """``12.34×`` (``-`` for None): a speedup as every table shows it."""
    return f"{value:.2f}×" if value is not None else "-"


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
    """Render a table with a header rule; columns in ``right`` are right-aligned.

    Every cell is made safe for the terminal first (:func:`gpubench.textout.terminal_formatter`: control characters
    shown as escapes, characters standard output cannot encode in ASCII form), so columns line up as printed.
    """
    from gpubench.textout import terminal_formatter

    cell = terminal_formatter()
    cells = [[cell(h) for h in headers]] + [[cell(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()

    out = [line(cells[0]), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells[1:]]
    return "\n".join(out)


#: Short names of OpenCL platforms, for device labels such as ``opencl (CPU, PoCL)``.
PLATFORM_SHORT = {
    "portable computing language": "PoCL", "nvidia cuda": "NVIDIA", "amd accelerated parallel processing": "AMD",
    "intel(r) opencl": "Intel", "intel(r) opencl graphics": "Intel", "intel(r) opencl hd graphics": "Intel",
    "apple": "Apple", "rusticl": "rusticl", "clover": "Mesa Clover",
}

#: Flags (from :data:`gpubench.records.FLAGS`) that say a machine was too busy or noisy to trust a number.
NOISE_FLAGS = ("noisy", "busy")


def find_device(env: dict[str, Any], backend: str, device: str) -> dict[str, Any] | None:
    """The device entry a backend reported in the run environment for ``device`` (a bare kind such as
    ``opencl`` ran on that kind's first device), or None."""
    info = (env.get("backends") or {}).get(backend) or {}
    devices = [d for d in info.get("devices") or [] if isinstance(d, dict)] if isinstance(info, dict) else []
    match = next((d for d in devices if d.get("id") == device), None)
    prefix = device.split(":")[0]
    if match is None and prefix == device:
        match = next((d for d in devices if str(d.get("id", "")).split(":")[0] == prefix), None)
    return match


def device_text(env: dict[str, Any] | None, backend: str, device: str) -> str:
    """``device`` as a person reads it: ``opencl (CPU, PoCL)`` where the kind hides the hardware."""
    from gpubench.ops import device_hardware

    dev = find_device(env or {}, backend, device)
    hardware = device_hardware(dev)
    kind = str((dev or {}).get("kind") or device.split(":")[0])
    if not hardware or hardware == kind or (hardware == "gpu" and kind == "cuda"):
        return device
    platform = str((dev.get("details") or {}).get("platform", "")).strip()
    short = PLATFORM_SHORT.get(platform.lower(), platform[:20])
    hw = {"cpu": "CPU", "gpu": "GPU"}.get(hardware, hardware)
    return f"{device} ({hw}, {short})" if short else f"{device} ({hw})"


def has_gpu(env: dict[str, Any] | None) -> bool:
    """Whether the run's machine has a GPU: nvidia-smi listed one, or a backend reported a CUDA or GPU device."""
    from gpubench.ops import device_hardware

    env = env or {}
    if env.get("gpus"):
        return True
    for info in (env.get("backends") or {}).values():
        if isinstance(info, dict):
            for d in info.get("devices") or []:
                if isinstance(d, dict) and (d.get("kind") == "cuda" or device_hardware(d) in ("gpu", "accelerator")):
                    return True
    return False


def reason_text(backend: str, reason: str) -> str:
    """A skip reason without its ``backend:`` prefix (the line names the backend already)."""
    prefix = f"{backend}:"
    return reason[len(prefix):].strip() if reason.startswith(prefix) else reason


def skip_line(backend: str, reason: str, count: int) -> str:
    """``35 cupy cases skipped: no CUDA driver found`` (one line: control characters in the reason are escaped)."""
    from gpubench.textout import visible

    return visible(f"{count} {backend} case{'s' if count != 1 else ''} skipped: {reason_text(backend, reason)}")


def skip_groups(rows: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
    """``(backend, reason, count)`` of the skipped rows, one per backend and reason, in order of appearance."""
    counts: dict[tuple[str, str], int] = {}
    for r in rows:
        if r["status"] == "skipped":
            key = (r["backend"], r["error"] or "no reason given")
            counts[key] = counts.get(key, 0) + 1
    return [(b, reason, n) for (b, reason), n in counts.items()]


def no_gpu_note(env: dict[str, Any] | None, rows: list[dict[str, Any]]) -> str:
    """One plain sentence when GPU cases were skipped because the machine has no GPU ('' otherwise)."""
    if env is None or has_gpu(env):
        return ""
    gpu_skips = [r for r in rows if r["status"] == "skipped" and r["device"].split(":")[0] not in ("cpu", "opencl")]
    if not gpu_skips:
        return ""
    return (f"This machine has no GPU (nvidia-smi lists none and no backend found a CUDA device), so its "
            f"{len(gpu_skips)} GPU case{'s were' if len(gpu_skips) != 1 else ' was'} skipped. "
            "Run with --device cpu to leave them out.")


def is_noisy(row: dict[str, Any]) -> bool:
    """Whether a row is flagged noisy or busy (its flags: :mod:`gpubench.rows` never sets ``noisy`` on a
    one-sample case, and a one-sample case is never busy enough to matter)."""
    if row.get("n_samples", 2) < 2:
        return False
    return any(f in (row.get("flags") or []) for f in NOISE_FLAGS)


def noise_note(env: dict[str, Any] | None, rows: list[dict[str, Any]]) -> str:
    """A warning when most correct cases are noisy or busy, with the machine's load where the run recorded it."""
    ok = [r for r in rows if r["status"] == "ok" and r.get("n_samples", 0) >= 2]
    noisy = [r for r in ok if is_noisy(r)]
    if not ok or len(noisy) * 2 <= len(ok):
        return ""
    busy = sum(1 for r in noisy if "busy" in (r.get("flags") or []))
    what = f"{len(noisy)} of {len(ok)} measured cases are noisy" + (f" ({busy} busy)" if busy else "")
    return (f"{what}: their median's 95% interval did not reach the target within the time budget. "
            f"{load_text(env)}Compare ratios taken in one run, or rerun on an idle machine.")


def load_text(env: dict[str, Any] | None) -> str:
    """``Load average at the start: 1.9, 1.2, 0.8 on 2 cores. `` ('' where not recorded)."""
    load = (env or {}).get("load_avg")
    if not isinstance(load, (list, tuple)) or not load:
        return ""
    cores = ((env or {}).get("cpu") or {}).get("logical_cores")
    on = f" on {cores} logical cores" if cores else ""
    return f"Load average when the run started: {', '.join(f'{x:g}' for x in load)} (1, 5, 15 min){on}. "


def ci_text(row: dict[str, Any]) -> str:
    """``±1.2%`` of the median, ``1 run`` for a one-sample case, ``""`` without a median."""
    if not row.get("median_s"):
        return ""
    if row.get("n_samples", 0) < 2:
        return "1 run"
    half = (row["ci95_high_s"] - row["ci95_low_s"]) / 2 / row["median_s"] * 100
    return f"±{half:.1f}%"


def note_text(row: dict[str, Any], limit: int = 70) -> str:
    """The note of a row: its error when not ok, else its flags (``noisy``, ``above_ceiling`` ...)."""
    if row["status"] != "ok":
        return row["error"][:limit]
    return " ".join(row.get("flags") or [])


def flag_note(row: dict[str, Any], detail: bool = False) -> str:
    """A row's flags as one note (``launch_bound, noisy``); with ``detail``, what each one means for this row."""
    flags = list(row.get("flags") or ())
    if not detail:
        return ", ".join(flags)
    metrics = row.get("metrics") or {}
    out = []
    for flag in flags:
        broke = metrics.get(flag) if flag in ("implausible", "above_ceiling") else None
        if isinstance(broke, dict) and broke.get("value"):
            out.append(f"{flag}: {broke.get('rate', 0):.4g} > {broke.get('name', '')} {broke['value']:.4g} "
                       f"{broke.get('unit', '')} ({broke.get('source', '')})")
        elif flag == "noisy":
            out.append("noisy: CI target not met")
        elif flag == "launch_bound":
            out.append("launch_bound: host time per call ≥ device time")
        elif flag == "throttled" and ((row.get("machine") or {}).get("gpu") or {}).get("throttled_by"):
            out.append("throttled: " + ", ".join(row["machine"]["gpu"]["throttled_by"]))
        else:
            out.append(flag)
    return "; ".join(out)


def _is_training(row: dict[str, Any]) -> bool:
    from gpubench.workloads import find_workload

    w = find_workload(row["workload"])
    if w is not None:
        return w.report_section == "training"
    return "final_accuracy" in (row.get("metrics") or {})


def _num(value: Any, fmt: str = "{:.3g}") -> str:
    return fmt.format(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else "-"


def results_parts(rows: list[dict[str, Any]], environment: dict[str, Any] | None = None
                  ) -> tuple[list[tuple[list[str], list[list[str]], tuple[int, ...]]], list[str], list[str]]:
    """The summary of a run as parts (rows from :func:`gpubench.rows.build_rows`): ``(tables, skip lines,
    notes)``, each table ``(headers, cells, right-aligned columns)``: the measured cases (training cases in
    their own table with accuracy and samples/s), one line per backend and reason for the skipped ones, and
    notes on a machine without a GPU and on noise. :func:`results_table` prints them; a notebook shows them
    as HTML."""
    env = environment
    kernel, training = [], []
    for r in rows:
        if r["status"] == "skipped":
            continue
        speed = fmt_speedup(r["speedup"])
        if _is_training(r):
            m = r.get("metrics") or {}
            training.append([r["workload"], r["size"], r["implementation"], r["device_text"], r["dtype"],
                             r["status"], fmt_time(r["median_s"]), ci_text(r),
                             _num(m.get("final_accuracy"), "{:.4f}"),
                             _num(m.get("time_to_target_s"), "{:.3g} s") if m.get("time_to_target_s") is not None
                             else ("not reached" if r["status"] == "ok" else "-"),
                             _num(m.get("samples_per_s"), "{:,.0f}"), speed, note_text(r)])
        else:
            kernel.append([r["workload"], r["size"], r["implementation"], r["device_text"], r["dtype"], r["status"],
                           fmt_time(r["median_s"]), ci_text(r), fmt_rate(r), speed, note_text(r)])
    tables = []
    if kernel:
        tables.append((["workload", "size", "backend", "device", "dtype", "status", "median", "95% CI", "rate",
                        "speedup", "note"], kernel, (6, 7, 8, 9)))
    if training:
        tables.append((["workload", "model", "backend", "device", "dtype", "status", "per epoch", "95% CI",
                        "accuracy", "to target", "samples/s", "speedup", "note"], training, (6, 7, 8, 9, 10, 11)))
    skips = [skip_line(b, reason, n) for b, reason, n in skip_groups(rows)]
    notes = [note for note in (no_gpu_note(env, rows), noise_note(env, rows)) if note]
    return tables, skips, notes


def results_table(rows: list[dict[str, Any]], environment: dict[str, Any] | None = None) -> str:
    """The summary of a run (rows from :func:`gpubench.rows.build_rows`): a table of the measured cases
    (training cases in their own table with accuracy and samples/s), then one line per backend and reason
    for the skipped ones, and notes on a machine without a GPU and on noise (:func:`results_parts`)."""
    tables, skips, notes = results_parts(rows, environment)
    out = [render(headers, cells, right=right) for headers, cells, right in tables]
    if skips:
        out.append("\n".join(skips))
    out += ["note: " + note for note in notes]
    return "\n\n".join(out)

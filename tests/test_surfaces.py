"""Every surface a user reads gives the same figures for every case: ``show``, ``export`` (JSON and CSV), the
report (its model and its case table), ``compare``, ``history`` and ``gpubench.load``.

The store holds every kind of case: plain ones on the CPU and a GPU, each mode (TF32, host↔device copies
counted, cold and hot cache, an NHWC layout), the lecture's naive timings (``lecture`` and ``host_sync``),
flagged ones (noisy, a one-sample case, busy and launch-bound, implausible, above the measured ceiling),
incorrect, error, timeout and skipped cases, a training case and a copy; two runs of them, and the machine's
calibration. The figures are first checked against what they must be (a TF32 or ``+copies`` case against the
same problem's plain NumPy case, cold against cold, host_sync against host_sync, never a lecture timing),
then every surface is held to them.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from synthetic_results import GPU_NAME, calibration_run, environment  # noqa: E402

from gpubench.records import CaseResult, CaseSpec  # noqa: E402
from gpubench.rows import read_runs  # noqa: E402
from gpubench.store import ResultStore  # noqa: E402
from gpubench.tables import flag_note, fmt_rate, fmt_speedup  # noqa: E402
from gpubench.workloads import get_workload  # noqa: E402

MATMUL = {"m": 256, "n": 256, "k": 256}
SAXPY = {"n": 1 << 24}
CONV = {"n": 1, "c": 3, "h": 32, "w": 32, "k": 8, "r": 3, "s": 3}
CUDA = "cuda:0"


def spread(median: float, n: int = 9) -> tuple[float, ...]:
    """``n`` samples whose median is ``median``, within ±0.4 % of it."""
    return tuple(median * (1 + 0.001 * (i - n // 2)) for i in range(n))


def case(workload: str, backend: str, device: str, dtype: str, params: dict, median: float | None = None, *,
         status: str = "ok", n: int = 9, **kw) -> CaseResult:
    """A record as the case path makes it: normalized parameters, the workload's FLOPs and bytes."""
    w = get_workload(workload)
    p = w.normalize_params(params)
    spec = CaseSpec.make(workload, backend, device, dtype, p, suite="kinds")
    kw.setdefault("device_name", GPU_NAME if device.startswith("cuda") else "Test CPU")
    kw.setdefault("target_met", True if status == "ok" and n > 1 else None)
    if status in ("skipped", "error", "timeout"):
        return CaseResult(spec, status, error=f"{backend}: a synthetic {status} reason", spec_hash="h")
    if status == "incorrect":
        kw.update(rel_error=0.5, tolerance=1e-2, error="relative error 0.5 exceeds tolerance 0.01")
    return CaseResult(spec, status, samples=spread(median, n), flops=w.flops(p), bytes=w.bytes_moved(p, dtype),
                      spec_hash="h", **kw)


def kinds(slow: float = 1.0) -> dict[str, CaseResult]:
    """Every kind of case, by name; ``slow`` scales the GPU's plain matmul (a second run that regressed)."""
    out = {
        "numpy": case("matmul", "numpy", "cpu", "float32", MATMUL, 1e-3),
        "torch_cpu": case("matmul", "torch", "cpu", "float32", MATMUL, 0.8e-3),
        "cuda": case("matmul", "torch", CUDA, "float32", MATMUL, 20e-6 * slow),
        "tf32": case("matmul", "torch", CUDA, "float32", {**MATMUL, "tf32": True}, 10e-6),
        "copies": case("matmul", "torch", CUDA, "float32", {**MATMUL, "include_transfer": True}, 200e-6),
        "tf32_copies": case("matmul", "torch", CUDA, "float32", {**MATMUL, "tf32": True, "include_transfer": True},
                            150e-6),
        "numpy_host_sync": case("matmul", "numpy", "cpu", "float32", {**MATMUL, "timing": "host_sync"}, 1.1e-3,
                                n=10, target_met=None),
        "cuda_host_sync": case("matmul", "torch", CUDA, "float32", {**MATMUL, "timing": "host_sync"}, 40e-6,
                               n=10, target_met=None),
        "numpy_lecture": case("matmul", "numpy", "cpu", "float32", {**MATMUL, "timing": "lecture"}, 1e-3, n=10,
                              target_met=None, clock="unsynchronized", flags=("not_a_measurement",)),
        "cuda_lecture": case("matmul", "torch", CUDA, "float32", {**MATMUL, "timing": "lecture"}, 0.2e-6, n=10,
                             target_met=None, clock="unsynchronized", flags=("not_a_measurement",)),
        # 512³: 134 TFLOP/s is above the H100's 67 (datasheet) and the machine's measured 50.
        "numpy_512": case("matmul", "numpy", "cpu", "float32", {"m": 512, "n": 512, "k": 512}, 8e-3),
        "implausible": case("matmul", "torch", CUDA, "float32", {"m": 512, "n": 512, "k": 512}, 2e-6),
        # 1024³ at 55 TFLOP/s: below the datasheet, above the measured ceiling even at its interval's slow end.
        "above": case("matmul", "torch", CUDA, "float32", {"m": 1024, "n": 1024, "k": 1024}, 2 * 1024**3 / 55e12),
        "numpy_f64": case("matmul", "numpy", "cpu", "float64", MATMUL, 2e-3),
        "noisy": case("matmul", "torch", "cpu", "float64", MATMUL, 1.5e-3, target_met=False),
        "one_sample": case("matmul", "numpy", "cpu", "float64", {"m": 128, "n": 128, "k": 128}, 3e-4, n=1,
                           target_met=False, flags=("noisy",)),
        "busy": case("matmul", "torch", CUDA, "float64", MATMUL, 30e-6, flags=("busy", "launch_bound")),
        "incorrect": case("matmul", "torch", CUDA, "float16", MATMUL, 5e-6, status="incorrect", n=1),
        "skipped": case("matmul", "cupy", CUDA, "float32", MATMUL, status="skipped"),
        "error": case("matmul", "torch", CUDA, "bfloat16", MATMUL, status="error"),
        "timeout": case("matmul", "numpy", "cpu", "float16", {"m": 4096, "n": 4096, "k": 4096}, status="timeout"),
        "numpy_cold": case("saxpy", "numpy", "cpu", "float32", SAXPY, 10e-3),
        "numpy_hot": case("saxpy", "numpy", "cpu", "float32", {**SAXPY, "cache": "hot"}, 8e-3),
        "cuda_cold": case("saxpy", "torch", CUDA, "float32", SAXPY, 80e-6),
        "cuda_hot": case("saxpy", "torch", CUDA, "float32", {**SAXPY, "cache": "hot"}, 70e-6),
        "cuda_cold_copies": case("saxpy", "torch", CUDA, "float32", {**SAXPY, "include_transfer": True}, 20e-3),
        "numpy_nchw": case("conv2d", "numpy", "cpu", "float32", CONV, 2e-3),
        "numpy_nhwc": case("conv2d", "numpy", "cpu", "float32", {**CONV, "layout": "NHWC"}, 3e-3),
        "cuda_nchw": case("conv2d", "torch", CUDA, "float32", CONV, 30e-6),
        "cuda_nhwc": case("conv2d", "torch", CUDA, "float32", {**CONV, "layout": "NHWC"}, 25e-6),
        "h2d": case("transfer", "torch", CUDA, "float32", {"bytes": 1 << 20, "direction": "h2d", "memory": "pinned"},
                    50e-6),
        "mnist_cpu": case("mnist", "numpy", "cpu", "float32", {"epochs": 2}, 10.0, n=2,
                          metrics={"final_accuracy": 0.91, "time_to_target_s": 15.0, "samples_per_s": 800.0}),
        "mnist_cuda": case("mnist", "torch", CUDA, "float32", {"epochs": 2}, 1.0, n=2,
                           metrics={"final_accuracy": 0.92, "time_to_target_s": 1.5, "samples_per_s": 8000.0}),
    }
    return out


@pytest.fixture(scope="module")
def store_of_every_kind(tmp_path_factory):
    path = tmp_path_factory.mktemp("surfaces") / "store.sqlite"
    with ResultStore(path) as store:
        calibration_run(store)
        runs = []
        for slow in (1.0, 1.5):
            run = store.begin_run("kinds", baseline="numpy", environment=environment(), command="synthetic")
            cases = kinds(slow)
            for r in cases.values():
                store.add_result(run, r)
            store.finish_run(run)
            runs.append((run, list(cases)))
    return path, runs


def reference_rows(path: Path) -> dict[int, dict[str, dict]]:
    """The rows every surface must agree with, by run id and case name."""
    with ResultStore(path, readonly=True) as store:
        runs = [r for r in store.runs() if r.suite == "kinds"]
        read = read_runs(store, runs)
    names = list(kinds())
    return {r.info.id: dict(zip(names, r.rows)) for r in read}


def test_the_figures_are_what_they_must_be(store_of_every_kind):
    path, runs = store_of_every_kind
    rows = reference_rows(path)[runs[0][0]]
    med = {name: row["median_s"] for name, row in rows.items()}
    # A mode case against the same problem's plain CPU case: TF32 and +copies against plain NumPy float32.
    for name in ("cuda", "tf32", "copies", "tf32_copies", "torch_cpu"):
        assert rows[name]["speedup"] == pytest.approx(med["numpy"] / med[name], rel=1e-12), name
        assert rows[name]["speedup_cpu"] == pytest.approx(med["torch_cpu"] / med[name], rel=1e-12), name
        assert rows[name]["fastest_cpu"] == "torch:cpu"
    assert rows["tf32"]["size"] == "256³ tf32" and rows["copies"]["size"] == "256³ +copies"  # labelled
    # A matched mode against the same mode: cold with cold, hot with hot, NHWC with NHWC, host_sync with host_sync.
    for name, ref in (("cuda_cold", "numpy_cold"), ("cuda_hot", "numpy_hot"), ("cuda_cold_copies", "numpy_cold"),
                      ("cuda_nhwc", "numpy_nhwc"), ("cuda_nchw", "numpy_nchw"),
                      ("cuda_host_sync", "numpy_host_sync")):
        assert rows[name]["speedup"] == pytest.approx(med[ref] / med[name], rel=1e-12), name
    assert rows["numpy"]["speedup"] == 1.0 and rows["numpy"]["speedup_ci"] == 0.0
    # Never a speedup for the lecture's timing, an incorrect case or one that did not run.
    for name in ("numpy_lecture", "cuda_lecture", "incorrect", "skipped", "error", "timeout"):
        assert rows[name]["speedup"] is None and rows[name]["speedup_cpu"] is None and not rows[name]["measurement"]
    assert rows["h2d"]["speedup"] is None and rows["h2d"]["measurement"]  # no CPU case of a copy
    # Rates at the median; the lecture's keeps the rate its clock implies, flagged.
    assert rows["cuda"]["rate"] == pytest.approx(2 * 256**3 / med["cuda"] / 1e9)
    assert rows["cuda"]["rate_unit"] == "gflops"
    assert rows["cuda_cold"]["rate"] == pytest.approx(3 * 4 * (1 << 24) / med["cuda_cold"] / 1e9)
    assert rows["cuda_cold"]["rate_unit"] == "gbps"
    assert rows["incorrect"]["rate"] is None and rows["cuda_lecture"]["rate"] > 67_000
    # Flags: the record's, noisy where the target was missed (never on one sample), and the ceilings'.
    assert rows["cuda_lecture"]["flags"] == ["above_ceiling", "implausible", "not_a_measurement"]
    assert rows["implausible"]["flags"] == ["above_ceiling", "implausible"]
    assert rows["above"]["flags"] == ["above_ceiling"]
    assert rows["noisy"]["flags"] == ["noisy"] and rows["one_sample"]["flags"] == []
    assert rows["busy"]["flags"] == ["busy", "launch_bound"] and rows["cuda"]["flags"] == []
    # % of the attainable roof: compute-bound at 256³ on this GPU (50 TFLOP/s measured), none with copies.
    ai = (2 * 256**3) / (3 * 256 * 256 * 4)
    assert rows["cuda"]["attainable_gflops"] == pytest.approx(min(50000.0, 3000.0 * ai))
    assert rows["cuda"]["roofline_pct"] == pytest.approx(100 * rows["cuda"]["rate"] / min(50000.0, 3000.0 * ai))
    assert rows["copies"]["roofline_pct"] is None and rows["numpy_lecture"]["roofline_pct"] is None


def _num(cell: str) -> float | None:
    return float(cell) if cell != "" else None


def _table_cells(text: str) -> list[list[str]]:
    """Body lines of every terminal table in ``text``, cut at the columns its rule line marks."""
    out: list[list[str]] = []
    spans: list[tuple[int, int]] = []
    for line in text.splitlines():
        if re.fullmatch(r"-+( +-+)+", line):
            spans = [m.span() for m in re.finditer(r"-+", line)]
        elif not line.strip():
            spans = []
        elif spans:
            out.append([line[a:b].strip() for a, b in spans])
    return out


def _page_data(path: Path) -> dict:
    """The data a gpubench page carries (figures and the case table), as JSON inside the page."""
    found = re.search(r'<script type="application/json" id="gpubench-data">(.*?)</script>', path.read_text(), re.S)
    return json.loads(found.group(1))


def test_every_surface_reports_the_same_figures(store_of_every_kind, cli, tmp_path):
    path, runs = store_of_every_kind
    ref = reference_rows(path)
    (a, names), (b, _) = runs
    store = ["--store", str(path)]

    # export, JSON and CSV (all runs at once)
    code, out, _ = cli("export", "--format", "json", "--run", str(a), "--run", str(b), *store)
    assert code == 0
    exported = json.loads(out)["results"]
    code, out, _ = cli("export", "--format", "csv", "--run", str(a), "--run", str(b), *store)
    assert code == 0
    table = list(csv.DictReader(io.StringIO(out)))
    expected = [(run, name, ref[run][name]) for run in (a, b) for name in names]
    assert len(exported) == len(table) == len(expected)
    for (run, name, row), got, line in zip(expected, exported, table):
        assert got["run_id"] == run == int(line["run_id"])
        for key in ("speedup", "speedup_cpu", "speedup_ci", "rate", "roofline_pct", "gflops", "gbps", "median_s"):
            assert got[key] == row[key], (name, key)
            assert _num(line[key]) == row[key], (name, key)
        assert got["flags"] == row["flags"] == json.loads(line["flags"]), name
        assert got["measurement"] is row["measurement"] and line["measurement"] == str(row["measurement"])
        assert got["rate_unit"] == row["rate_unit"] == line["rate_unit"] and got["fastest_cpu"] == row["fastest_cpu"]

    # show: one table line per case that ran (skipped cases are one line per reason)
    for run in (a, b):
        code, out, _ = cli("show", str(run), *store)
        assert code == 0
        shown = {}
        for cells in _table_cells(out):
            shown[tuple(cells[:5])] = cells
        for name, row in ref[run].items():
            if row["status"] == "skipped":
                assert "1 cupy case skipped: a synthetic skipped reason" in out
                continue
            cells = shown.pop((row["workload"], row["size"], row["implementation"], row["device_text"], row["dtype"]))
            training = row["workload"] == "mnist"
            assert cells[11 if training else 9] == fmt_speedup(row["speedup"]), name
            if not training:
                assert cells[8] == fmt_rate(row), name
            note = " ".join(row["flags"]) if row["status"] == "ok" else row["error"]
            assert cells[12 if training else 10] == note, name
        assert not shown

    # the report: its model, and the case table inside the page
    from gpubench.report.model import load_runs

    with ResultStore(path, readonly=True) as opened:
        model = load_runs(opened, [str(a), str(b)])
    report = tmp_path / "r.html"
    code, _, err = cli("report", str(a), str(b), "-o", str(report), *store)
    assert code == 0, err
    cells = _page_data(report)["table"]["rows"]
    assert len(cells) == len(expected)
    model_rows = [r for run in model for r in run.rows]
    for (_, name, row), mrow, cell in zip(expected, model_rows, cells):
        for key in ("speedup", "speedup_cpu", "rate", "roofline_pct", "flags", "measurement"):
            assert mrow[key] == row[key], (name, key)
        rate, x_cpu, x_base, roof, note = cell[9], cell[10], cell[11], cell[12], cell[14]
        assert rate == ([row["rate"], "GB/s" if row["rate_unit"] == "gbps" else "GFLOP/s"] if row["rate"] else None)
        assert (x_cpu, x_base, roof) == (row["speedup_cpu"], row["speedup"], row["roofline_pct"]), name
        assert note == (flag_note(row, detail=True) if row["status"] == "ok" else row["error"][:300]), name

    # compare: the new side's rate, speedup and flags
    code, out, _ = cli("compare", str(a), str(b), *store)
    assert code in (0, 1)
    compared = {(c[1], c[2], c[3], c[4]): c for c in _table_cells(out)}
    for name, row in ref[b].items():
        c = compared[(row["workload"], row["size"], row["series"], row["dtype"])]
        assert c[9:12] == [fmt_rate(row), fmt_speedup(row["speedup"]), " ".join(row["flags"]) or "-"], name
    assert compared[("matmul", "256³", f"torch:{CUDA}", "float32")][0] == "slower"

    # history: a point per measurement, with its row's figures
    from gpubench.history import collect

    with ResultStore(path, readonly=True) as opened:
        histories = collect(opened)
    points = {(p.run_id, h.spec.label()): p for h in histories for p in h.points}
    with ResultStore(path, readonly=True) as opened:
        labels = {run: [r.spec.label() for r in opened.results(run)] for run in (a, b)}
    for run in (a, b):
        for (name, row), label in zip(ref[run].items(), labels[run]):
            p = points.pop((run, label), None)
            if not row["measurement"]:
                assert p is None, name
                continue
            assert (p.median_s, p.rate, p.rate_unit, p.speedup, list(p.flags)) == (
                row["median_s"], row["rate"], row["rate_unit"], row["speedup"], row["flags"]), name
    assert not points
    page = tmp_path / "h.html"
    code, _, err = cli("history", "-o", str(page), *store)
    assert code == 0, err
    figures = _page_data(page)["figures"]
    hovers = [t for fig in figures for trace in fig["data"] for t in trace.get("text") or []]
    for name in ("tf32", "copies", "cuda_cold"):
        row = ref[b][name]
        assert any(f"{fmt_rate(row)} · {fmt_speedup(row['speedup'])} vs baseline numpy:cpu" in t for t in hovers), name

    # gpubench.load
    pd = pytest.importorskip("pandas")
    from gpubench import load

    frame = load(path, [a, b])
    assert len(frame) == len(expected)
    for (run, name, row), (_, got) in zip(expected, frame.iterrows()):
        assert got["run_id"] == run
        for key in ("speedup", "speedup_cpu", "rate", "roofline_pct"):
            value = got[key]
            assert (row[key] is None and (value is None or pd.isna(value))) or value == row[key], (name, key)
        assert list(got["flags"]) == row["flags"] and bool(got["measurement"]) is row["measurement"]


def test_mode_speedups_agree_between_export_and_report(store_of_every_kind, cli):
    """The disagreement this module ends: a TF32 and a +copies CUDA case have one speedup, in every surface."""
    path, runs = store_of_every_kind
    a = runs[0][0]
    code, out, _ = cli("export", "--format", "json", "--run", str(a), "--store", str(path))
    exported = {(r["size"], r["device"]): r for r in json.loads(out)["results"] if r["workload"] == "matmul"}
    from gpubench.report.model import load_runs

    with ResultStore(path, readonly=True) as store:
        (run,) = load_runs(store, [str(a)])
    for size in ("256³ tf32", "256³ +copies", "256³ tf32 +copies"):
        report = next(r for r in run.rows if r["size"] == size)
        assert exported[(size, CUDA)]["speedup"] is not None
        assert exported[(size, CUDA)]["speedup"] == report["speedup"]
        assert not math.isnan(report["speedup"])

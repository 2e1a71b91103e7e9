"""The report's inference section (latency and throughput against batch, the crossover, the verdict) and the
export's latency columns, from records shaped like the inference workload's."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from synthetic_results import environment  # noqa: E402

from gpubench.export import FIELDS, to_csv, to_json  # noqa: E402
from gpubench.latency import COLUMNS  # noqa: E402
from gpubench.records import CaseResult, CaseSpec  # noqa: E402
from gpubench.report import charts, inference  # noqa: E402
from gpubench.report.build import build_report  # noqa: E402
from gpubench.report.model import load_runs  # noqa: E402
from gpubench.store import ResultStore  # noqa: E402

BATCHES = (1, 2, 4, 8, 16)
#: (backend, device, fixed seconds, seconds per sample): the CPU engines answer a small batch sooner, the GPU
#: costs more per request but little per sample. Throughput crosses between batch 2 and 4.
ENGINES = (("onnxruntime", "cpu", 1e-3, 1e-3), ("torch", "cpu", 1.5e-3, 1.2e-3), ("numpy", "cpu", 3e-3, 3e-3),
           ("torch", "cuda:0", 3e-3, 5e-5))


def per_call(median: float) -> tuple[float, ...]:
    """200 calls at ``median`` but three slow ones (twice as long): p50 = median, p99 = 2 × median."""
    return (median,) * 197 + (2 * median,) * 3


def inference_store(path: Path, model: str = "mlp", engines=ENGINES) -> ResultStore:
    store = ResultStore(path)
    run = store.begin_run("inference", baseline="numpy", environment=environment(extra_backend="onnxruntime"))
    for backend, device, fixed, each in engines:
        for b in BATCHES:
            spec = CaseSpec.make("inference", backend, device, "float32", {"model": model, "batch": b, "seed": 0},
                                 suite="inference")
            store.add_result(run, CaseResult(
                spec, "ok", samples=per_call(fixed + each * b), flops=2e5 * b, rel_error=1e-7, tolerance=1e-4,
                spec_hash="h", metrics={"latency_method": "per_call", "latency_calls": 200, "samples_per_call": b,
                                        "peak_memory_bytes": 1000 * b}))
    store.add_result(run, CaseResult(CaseSpec.make("inference", "onnxruntime", "cuda", "float16",
                                                   {"model": model, "batch": 1, "seed": 0}, suite="inference"),
                                     "skipped", error="onnxruntime: no CUDA execution provider"))
    store.finish_run(run)
    return store


def rows_of(store: ResultStore) -> list[dict]:
    (data,) = load_runs(store, ["latest"])
    for r in data.rows:
        r["run_index"] = 0
    return data.rows


def test_crossover_is_where_the_gpu_serves_more_at_every_larger_batch(tmp_path):
    with inference_store(tmp_path / "s.sqlite") as store:
        rows = inference.usable(rows_of(store))
    assert len(rows) == len(ENGINES) * len(BATCHES)  # the skipped case is not a point
    cross = inference.crossover(rows)
    assert cross.batches == BATCHES and cross.batch == 4
    # The best CPU engine is the fastest at each batch, never the baseline (numpy) by default.
    best = inference.best_by_batch(rows, True, inference.throughput, highest=True)
    assert {b: r["backend"] for b, r in best.items()} == dict.fromkeys(BATCHES, "onnxruntime")


def test_no_crossover_and_gpu_everywhere(tmp_path):
    slow_gpu = (("onnxruntime", "cpu", 1e-3, 1e-3), ("torch", "cuda:0", 1.0, 1.0))
    with inference_store(tmp_path / "a.sqlite", engines=slow_gpu) as store:
        rows = inference.usable(rows_of(store))
    assert inference.crossover(rows).batch is None
    assert "no crossover" in inference.verdict(rows)
    fast_gpu = (("onnxruntime", "cpu", 1e-3, 1e-3), ("torch", "cuda:0", 1e-4, 1e-5))
    with inference_store(tmp_path / "b.sqlite", engines=fast_gpu) as store:
        rows = inference.usable(rows_of(store))
    assert inference.crossover(rows).batch == 1
    assert "the GPU answers first" in inference.verdict(rows) and "at every batch measured" in inference.verdict(rows)
    cpu_only = (("onnxruntime", "cpu", 1e-3, 1e-3),)
    with inference_store(tmp_path / "c.sqlite", engines=cpu_only) as store:
        rows = inference.usable(rows_of(store))
    assert inference.verdict(rows) == "batch 1: CPU (onnxruntime) 4 ms p99; no GPU case was measured"


def test_verdict_names_both_sides_at_batch_one(tmp_path):
    with inference_store(tmp_path / "s.sqlite") as store:
        rows = inference.usable(rows_of(store))
    assert inference.verdict(rows) == ("batch 1: CPU (onnxruntime) 4 ms p99 vs GPU (torch) 6.1 ms p99 — the CPU "
                                       "answers first; the GPU overtakes the best CPU engine from batch 4")


def test_figures_draw_p50_with_a_p99_band_and_mark_the_crossover(tmp_path):
    with inference_store(tmp_path / "s.sqlite") as store:
        rows = inference.usable(rows_of(store))
    fig = inference.latency_figure(rows, "mlp · float32: latency", charts.Colors())
    lines = [t for t in fig["data"] if t.get("showlegend", True)]
    bands = [t for t in fig["data"] if t.get("fill") == "tonexty"]
    assert [t["name"] for t in lines] == ["numpy:cpu", "onnxruntime:cpu", "torch:cpu", "torch:cuda:0"]
    assert len(bands) == len(lines)
    gpu = next(t for t in lines if t["name"] == "torch:cuda:0")
    band = next(t for t in bands if t["legendgroup"] == gpu["legendgroup"])
    assert gpu["x"] == list(BATCHES) and band["y"] == pytest.approx([2 * y for y in gpu["y"]])  # p99 = 2 × p50
    assert gpu["y"][0] == pytest.approx((3e-3 + 5e-5) * 1e3)  # milliseconds
    cpu_torch = next(t for t in lines if t["name"] == "torch:cpu")
    assert gpu["line"]["color"] != cpu_torch["line"]["color"]  # one hue per backend and device
    assert fig["layout"]["shapes"][0]["x0"] == 4
    tput = inference.throughput_figure(rows, "mlp · float32: throughput", charts.Colors())
    onnx = next(t for t in tput["data"] if t["name"] == "onnxruntime:cpu")
    assert onnx["y"][0] == pytest.approx(1 / 2e-3 * 200 / (197 + 6), rel=1e-9)  # batch × calls / total time
    assert tput["layout"]["shapes"][0]["x0"] == 4


def test_report_renders_the_section(tmp_path):
    with inference_store(tmp_path / "s.sqlite") as store:
        path, _ = build_report(store, ["latest"], tmp_path / "r.html")
    text = path.read_text()
    section = text[text.index('<section id="w-inference">'):]
    section = section[:section.index("</section>")]
    assert "MLP (784 → 128 → 10) · float32" in section
    assert "the GPU overtakes the best CPU engine from batch 4" in section
    assert "<th>best CPU engine</th>" in section and "<td>onnxruntime:cpu</td>" in section
    data = json.loads(re.search(r'<script[^>]*id="gpubench-data"[^>]*>(.*?)</script>', text, re.S).group(1))
    titles = [f["layout"]["title"]["text"] for f in data["figures"]]
    assert "mlp · float32: latency against batch" in titles and "mlp · float32: throughput against batch" in titles
    assert not any(t.startswith("inference float32") for t in titles)  # not the generic size charts


def test_export_and_load_carry_the_latency_columns(tmp_path):
    from gpubench.frame import records
    from gpubench.rows import read_runs

    with inference_store(tmp_path / "s.sqlite") as store:
        runs = read_runs(store, [store.run("latest")])
        doc = json.loads(to_json(runs))
        csv_text = to_csv(runs)
        frame_rows = records(store, "latest")
    assert doc["schema_version"] == 4 and set(COLUMNS) <= set(FIELDS)
    row = next(r for r in doc["results"] if r["backend"] == "onnxruntime" and r["params"]["batch"] == 4)
    assert row["latency_p50_s"] == pytest.approx(5e-3) and row["latency_p99_s"] == pytest.approx(1e-2)
    assert row["latency_calls"] == 200 and row["throughput_samples_per_s"] == pytest.approx(4 * 200 / (5e-3 * 203))
    skipped = next(r for r in doc["results"] if r["status"] == "skipped")
    assert all(skipped[c] is None for c in COLUMNS)
    assert all(c in csv_text.splitlines()[0] for c in COLUMNS)
    assert all("latency_p99_s" in r for r in frame_rows)

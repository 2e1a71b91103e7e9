"""The report's attention section: TFLOP/s against S per kernel, the memory each needed, and its dispatch."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from synthetic_results import attention_results, environment  # noqa: E402

from gpubench.report import attention, charts  # noqa: E402
from gpubench.report.build import build_report  # noqa: E402
from gpubench.report.model import load_runs  # noqa: E402
from gpubench.store import ResultStore  # noqa: E402


def _rows(tmp_path):
    store = ResultStore(tmp_path / "s.sqlite")
    run = store.begin_run("attention", baseline="numpy", environment=environment())
    attention_results(store, run)
    store.finish_run(run)
    (data,) = load_runs(store, ["latest"])
    for r in data.rows:
        r["run_index"] = 0
    return store, data.rows


def test_rate_figure_draws_tflops_against_sequence_length(tmp_path):
    store, rows = _rows(tmp_path)
    store.close()
    gpu = [r for r in rows if r["dtype"] == "bfloat16" and not r["params"]["backward"]]
    fig = attention.rate_figure(gpu, "forward · bfloat16", charts.Colors())
    names = sorted(t["name"] for t in fig["data"])
    assert names == ["torch[flash]:cuda:0 causal 12 heads × 64", "torch[flash]:cuda:0 full 12 heads × 64",
                     "torch[math]:cuda:0 causal 12 heads × 64", "torch[math]:cuda:0 full 12 heads × 64"]
    for trace in fig["data"]:
        assert trace["x"] == [128, 256, 512, 1024]
        assert trace["line"]["dash"] == ("dash" if " causal " in trace["name"] else "solid")
    flash = next(t for t in fig["data"] if t["name"] == "torch[flash]:cuda:0 full 12 heads × 64")
    want = [r["gflops"] / 1000 for r in sorted(gpu, key=lambda r: r["params"]["s"])
            if r["variant"] == "flash" and not r["params"]["causal"]]
    assert flash["y"] == want
    assert fig["layout"]["xaxis"]["tickvals"] == [128, 256, 512, 1024]
    assert fig["layout"]["yaxis"]["title"]["text"] == "TFLOP/s"


def test_memory_figure_and_table_show_what_each_kernel_needed(tmp_path):
    store, rows = _rows(tmp_path)
    store.close()
    fwd = [r for r in rows if not r["params"]["backward"]]
    fig = attention.memory_figure(fwd, "forward: peak memory", charts.Colors())
    math_full = next(t for t in fig["data"] if t["name"] == "torch[math]:cuda:0 bfloat16 full 12 heads × 64")
    assert math_full["y"] == [12 * s * 64 * 4 + 12 * s * s * 4 for s in (128, 256, 512, 1024)]
    html = attention.memory_table(rows, multi_run=False)
    assert "<th>S=128</th>" in html and "<th>S=1024</th>" in html
    assert "<td>torch[flash]:cuda:0</td><td>bfloat16</td><td>causal</td><td>forward+backward</td>" in html
    assert "synthetic" in html  # how it was measured
    no_memory = [{**r, "metrics": {}} for r in rows]
    assert attention.memory_figure(no_memory, "x", charts.Colors()) is None
    assert attention.memory_table(no_memory, False) == ""


def test_report_dispatches_on_the_workloads_report_section(tmp_path):
    store, _ = _rows(tmp_path)
    with store:
        path, _ = build_report(store, ["latest"], tmp_path / "r.html")
    text = path.read_text()
    section = text[text.index('<section id="w-attention">'):]
    section = section[:section.index("</section>")]
    assert "attention · forward+backward" in section and "memory each kernel needed" in section
    data = json.loads(re.search(r'<script[^>]*id="gpubench-data"[^>]*>(.*?)</script>', text, re.S).group(1))
    titles = [f["layout"]["title"]["text"] for f in data["figures"]]
    assert "forward · bfloat16: TFLOP/s against S" in titles
    assert "forward+backward: peak memory per kernel" in titles
    # The generic size charts are not drawn for attention.
    assert not any(t.startswith("attention bfloat16") for t in titles)

"""``gpubench report``: a self-contained page, every section from its data, escaping, overlays, speed."""

from __future__ import annotations

import json
import math
import random
import re
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from synthetic_results import calibration_run, make_store, matmul_result, synthetic_run  # noqa: E402

from gpubench.records import CaseResult, CaseSpec  # noqa: E402
from gpubench.report import analysis  # noqa: E402
from gpubench.report.build import build_report  # noqa: E402
from gpubench.report.html import script_json  # noqa: E402
from gpubench.report.model import load_runs  # noqa: E402
from gpubench.store import ResultStore  # noqa: E402

EVIL = "<script>alert(1)</script>"


def page_data(text: str) -> dict:
    """The JSON the page draws from."""
    m = re.search(r'<script type="application/json" id="gpubench-data">(.*?)</script>', text, re.S)
    assert m, "no data block"
    return json.loads(m.group(1))


def all_trace_names(data: dict) -> list[str]:
    return [t.get("name", "") for f in data["figures"] for t in f["data"]]


def test_script_json_cannot_close_its_script_block():
    text = script_json({"name": "</script><script>alert(1)</script>", "amp": "a&b", "nan": float("nan")})
    assert "<" not in text and ">" not in text and "&" not in text
    back = json.loads(text)
    assert back["name"] == "</script><script>alert(1)</script>" and back["amp"] == "a&b" and back["nan"] is None


def test_report_is_self_contained_with_every_section(tmp_path):
    with make_store(tmp_path / "s.sqlite", n_results=150) as store:
        path, runs = build_report(store, None, tmp_path / "out" / "r.html")
    text = path.read_text(encoding="utf-8")
    # Plotly's JavaScript (the basic partial bundle: every trace here is a scatter or a bar) is embedded
    # exactly once; nothing is loaded from anywhere.
    assert text.count("plotly.js (basic - minified) v") == 1
    assert text.count("var Plotly=(") == 1
    assert len(text.encode()) < 2_000_000
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", text, re.I)
    assert "Content-Security-Policy" in text and "connect-src &#x27;none&#x27;" in text
    for heading in ("At a glance", "The machine", "Break-even size", "Roofline", "Every case", "Problems"):
        assert heading in text, heading
    data = page_data(text)
    titles = " | ".join(f["layout"]["title"]["text"] for f in data["figures"])
    for part in ("GFLOP/s against size", "speedup", "host↔device bandwidth", "test accuracy against training time",
                 "time to target accuracy", "roofline"):
        assert part in titles, part
    # The transfer chart draws pinned and pageable separately.
    names = all_trace_names(data)
    assert any(n.endswith("pinned") for n in names) and any(n.endswith("pageable") for n in names)
    # Every case is in the table; the written file left no temporary behind.
    assert len(data["table"]["rows"]) == sum(len(r.rows) for r in runs)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["r.html"]


def test_sections_appear_only_with_their_data(tmp_path):
    with ResultStore(tmp_path / "s.sqlite") as store:
        run = store.begin_run("matmul", baseline="numpy")
        import random

        rng = random.Random(1)
        for size in (64, 128):
            store.add_result(run, matmul_result("numpy", "cpu", "float32", size, 10.0, rng))
        path, _ = build_report(store, ["latest"], tmp_path / "r.html")
    text = path.read_text()
    titles = " | ".join(f["layout"]["title"]["text"] for f in page_data(text)["figures"])
    assert "host↔device" not in titles and "accuracy" not in titles
    assert "No accelerator case with a CPU reference" in text  # break-even says why it has nothing
    assert "gpubench calibrate" in text  # the roofline says how to get ceilings


def test_speedups_name_baseline_and_fastest_cpu(tmp_path):
    import random

    rng = random.Random(0)
    with ResultStore(tmp_path / "s.sqlite") as store:
        run = store.begin_run("matmul", baseline="numpy")
        # numpy 10 GFLOP/s, torch (CPU) 40, the GPU 400: 40× numpy but only 10× the fastest CPU.
        for backend, device, rate in (("numpy", "cpu", 10.0), ("torch", "cpu", 40.0), ("torch", "cuda:0", 400.0)):
            store.add_result(run, matmul_result(backend, device, "float32", 1024, rate, rng, noise=0.0))
        runs = load_runs(store, None)
    gpu = next(r for r in runs[0].rows if r["device"] == "cuda:0")
    assert gpu["speedup_cpu"] == pytest.approx(10.0, rel=0.1)
    assert gpu["speedup"] == pytest.approx(40.0, rel=0.1)
    assert gpu["fastest_cpu"] == "torch:cpu"
    lines = analysis.headlines(runs)
    assert any("the fastest CPU backend (torch:cpu)" in ln and "numpy:cpu" in ln for ln in lines), lines


def test_break_even_with_and_without_copies(tmp_path):
    import random

    rng = random.Random(0)
    with ResultStore(tmp_path / "s.sqlite") as store:
        run = store.begin_run("matmul", baseline="numpy")
        for size, cpu, gpu, gpu_copy in ((128, 20.0, 5.0, 1.0), (512, 30.0, 60.0, 10.0), (2048, 30.0, 900.0, 90.0)):
            store.add_result(run, matmul_result("numpy", "cpu", "float32", size, cpu, rng))
            store.add_result(run, matmul_result("torch", "cuda:0", "float32", size, gpu, rng))
            store.add_result(run, matmul_result("torch", "cuda:0", "float32", size, gpu_copy, rng,
                                                include_transfer=True))
        items = analysis.break_even(load_runs(store, None))
    assert len(items) == 1
    b = items[0]
    assert b.series == "torch:cuda:0"
    assert b.text.startswith("between 128³") and "512³" in b.text
    assert b.with_copies.startswith("between 512³") and "2048³" in b.with_copies


def test_roofline_percentage_uses_the_lower_roof(tmp_path):
    import random

    rng = random.Random(0)
    with ResultStore(tmp_path / "s.sqlite") as store:
        calibration_run(store)  # cpu: 120 GFLOP/s float32, 40 GB/s
        run = store.begin_run("matmul", baseline="numpy", environment=store.run(1).environment)
        store.add_result(run, matmul_result("numpy", "cpu", "float32", 16, 1.0, rng, noise=0.0))
        store.add_result(run, matmul_result("numpy", "cpu", "float32", 1024, 60.0, rng, noise=0.0))
        runs = load_runs(store, [str(run)])
    assert runs[0].ceilings_run == 1  # found through the machine's calibration run
    small, big = sorted(runs[0].rows, key=lambda r: r["x"])
    ai_small = small["flops"] / small["bytes"]  # 16³ matmul: 2·16³ / (3·16²·4) ≈ 2.7 FLOP/byte
    assert small["attainable_gflops"] == pytest.approx(40.0 * ai_small)  # memory-bound
    assert big["attainable_gflops"] == pytest.approx(120.0)  # compute-bound
    assert big["roofline_pct"] == pytest.approx(50.0, rel=0.02)


def test_injection_attempts_are_escaped(tmp_path):
    import random

    rng = random.Random(0)
    with ResultStore(tmp_path / "s.sqlite") as store:
        env = {"hostname": EVIL, "cpu": {"model": EVIL}, "gpus": [{"name": EVIL}],
               "backends": {EVIL: {"available": False, "reason": EVIL}}, "libraries": {EVIL: EVIL}}
        run = store.begin_run(EVIL, baseline=EVIL, label=EVIL, command=EVIL, environment=env)
        for size in (64, 128):
            r = matmul_result(EVIL, EVIL, "float32", size, 10.0, rng)
            store.add_result(run, r)
        spec = CaseSpec.make("matmul", EVIL, "cpu", "float32", {"m": 8, "n": 8, "k": 8, EVIL: EVIL})
        store.add_result(run, CaseResult(spec, "skipped", error=EVIL, metrics={EVIL: EVIL}))
        store.add_ceiling(run, EVIL, "peak_flops", 1.0, EVIL, dtype="float32", method=EVIL)
        path, _ = build_report(store, None, tmp_path / "r.html")
    text = path.read_text()
    assert "<script>alert" not in text
    assert "alert(1)" in text  # the names are shown, escaped
    assert len(re.findall(r"<script\b", text)) == 4  # data block, error hook, plotly, the page's script
    data = page_data(text)
    # Inside figures, names reach Plotly HTML-escaped (Plotly renders tags in labels).
    for name in all_trace_names(data):
        assert "<script" not in name


def test_several_runs_overlay_each_labelled(tmp_path):
    with ResultStore(tmp_path / "s.sqlite") as store:
        a = synthetic_run(store, 60, seed=1, label="machine A", hostname="a")
        b = synthetic_run(store, 60, seed=2, label="machine B", hostname="b")
        path, runs = build_report(store, [str(a), str(b)], tmp_path / "r.html")
    text = path.read_text()
    assert [r.label for r in runs] == [f"run {a} · machine A", f"run {b} · machine B"]
    names = all_trace_names(page_data(text))
    assert any(n.startswith(f"run {a} · machine A: ") for n in names)
    assert any(n.startswith(f"run {b} · machine B: ") for n in names)
    assert "The machines" in text  # two hosts, two machine blocks


def test_cli_report_from_a_real_quick_run(cli, store_path, tmp_path, monkeypatch):
    code, _, err = cli("run", "--suite", "matmul", "--quick", "--backend", "numpy")
    assert code == 0, err
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("report")
    assert code == 0, err
    path = Path(out.strip())
    assert path == Path("reports/run-1.html") and path.exists()
    text = path.read_text()
    assert "numpy:cpu" in text and text.count("plotly.js (basic - minified) v") == 1
    rows = page_data(text)["table"]["rows"]
    assert rows and all(r[6] == "ok" for r in rows)


def test_cli_report_errors(cli, store_path, tmp_path):
    code, _, err = cli("report")
    assert code == 2 and "no results store" in err
    with ResultStore(store_path) as store:
        store.begin_run("x")
    code, _, err = cli("report", "7")
    assert code == 2 and "no run 7" in err
    code, _, err = cli("report", "latest~x")
    assert code == 2 and "bad run reference" in err


@pytest.mark.slow
def test_report_of_ten_thousand_results_is_fast(tmp_path):
    with make_store(tmp_path / "s.sqlite", n_results=10_000) as store:
        t0, c0 = time.perf_counter(), time.process_time()
        path, runs = build_report(store, ["latest"], tmp_path / "r.html")
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert sum(len(r.rows) for r in runs) >= 10_000
    # The target is 5 s. CPU time is what the report costs; wall time also counts waiting for a
    # core, so it gets slack for a busy test machine.
    assert cpu < 5.0, f"report of 10,000 results took {cpu:.1f} s of CPU"
    assert wall < 20.0, f"report of 10,000 results took {wall:.1f} s"


# --- what a person sees (issue 15) -------------------------------------------------------------------

from synthetic_results import environment, samples  # noqa: E402

from gpubench.report import bundle, charts  # noqa: E402


def _run(store, env=None, suite="matmul", **kw):
    return store.begin_run(suite, baseline="numpy", environment=env or environment("h", gpu=False), **kw)


def test_plotly_bundle_is_the_basic_one_unless_a_figure_needs_more():
    basic = bundle.plotly_js([{"data": [{"type": "scatter"}, {"type": "bar"}, {}]}])
    assert "plotly.js (basic - minified) v" in basic and len(basic) < 1_500_000
    full = bundle.plotly_js([{"data": [{"type": "heatmap"}]}])
    assert "plotly.js (basic" not in full and len(full) > 3_000_000


@pytest.mark.parametrize("values, kind, labels", [
    ([20, 50, 120, 200], "number", ["20", "50", "100", "200"]),
    ([0.5, 1.0, 3.0], "times", ["0.5×", "1×", "2×"]),
    ([4e6, 2.7e8], "number", ["5M", "10M", "20M", "50M", "100M", "200M"]),
    ([4096, 1 << 20, 1 << 30], "bytes", None),
])
def test_log_axes_have_full_tick_labels(values, kind, labels):
    axis = charts.log_axis(values, kind)
    ticks = axis["ticktext"]
    if labels is not None:
        assert ticks == labels
    else:
        assert ticks[0] == "4 KiB" and ticks[-1] == "1 GiB" and len(ticks) <= 8
    # Every label is a whole number with its unit: never a bare mantissa below a decade ("2", "5" for 20, 50).
    assert all(t not in ("2", "5") or v in (2, 5) for t, v in zip(ticks, axis["tickvals"]))
    assert axis["range"][0] <= math.log10(min(values)) and axis["range"][1] >= math.log10(max(values))


def test_a_single_point_gets_an_axis_with_several_ticks():
    axis = charts.log_axis([3.3e7], "number")
    assert len(axis["tickvals"]) >= 3
    assert 10 ** axis["range"][0] < 3.3e7 < 10 ** axis["range"][1]
    assert charts.linear_range([0.9])["range"][1] > 0.9


def _mnist_result(backend, model, t, acc, rng, **metrics):
    spec = CaseSpec.make("mnist", backend, "cpu", "float32", {"model": model, "optimizer": "adam", "epochs": 1,
                                                             "data": "offline", "train_size": 1000})
    curve = [{"epoch": 1, "epoch_s": t, "eval_accuracy": acc}]
    return CaseResult(spec, "ok", samples=(t,), flops=1e9, spec_hash="m", target_met=False, flags=("noisy",),
                      metrics={"curve": curve, "final_accuracy": acc, "samples_per_s": 1000 / t,
                               "time_to_target_s": t, "target_accuracy": 0.4, **metrics})


def test_legends_keep_only_what_varies_and_hues_follow_backends(tmp_path):
    rng = random.Random(0)
    with ResultStore(tmp_path / "s.sqlite") as store:
        env = environment("h", gpu=False)
        env["backends"]["opencl"] = {"available": True, "devices": [{"id": "opencl:0:0", "kind": "opencl",
                                                                     "hardware": "cpu"}]}
        run = _run(store, env, suite="mnist")
        for backend, speed in (("numpy", 1.0), ("torch", 2.0), ("tensorflow", 1.5)):
            store.add_result(run, _mnist_result(backend, "mlp", 0.5 / speed, 0.85, rng))
            store.add_result(run, _mnist_result(backend, "cnn", 10 / speed, 0.45, rng))
        for variant, rate in (("blocked", 20.0), ("tiled", 2.0)):
            for size in (128, 512):
                store.add_result(run, CaseResult(
                    CaseSpec.make("matmul", "opencl", "opencl", "float32", {"m": size, "n": size, "k": size},
                                  variant=variant),
                    "ok", samples=samples(2 * size**3 / rate / 1e9, 7, rng), flops=2.0 * size**3,
                    bytes=12.0 * size**2, spec_hash="o"))
        path, _ = build_report(store, None, tmp_path / "r.html")
    data = page_data(path.read_text())
    acc = next(f for f in data["figures"] if "accuracy against training time" in f["layout"]["title"]["text"])
    names = [t["name"] for t in acc["data"]]
    assert sorted(names) == sorted(f"{b} {m}" for b in ("numpy", "torch", "tensorflow") for m in ("mlp", "cnn"))
    assert not any("offline" in n or "float32" in n or "adam" in n for n in names)
    # One hue per backend; its two series differ by dash and marker.
    by_backend: dict[str, list] = {}
    for t in acc["data"]:
        by_backend.setdefault(t["name"].split()[0], []).append(t)
    assert len({ts[0]["line"]["color"] for ts in by_backend.values()}) == 3
    for ts in by_backend.values():
        assert len({t["line"]["color"] for t in ts}) == 1
        assert len({(t["line"]["dash"], t["marker"]["symbol"]) for t in ts}) == 2
    # One run of 10 s beside 0.25 s: a log time axis, so no curve is squeezed into a corner.
    assert acc["layout"]["xaxis"]["type"] == "log"
    thr = next(f for f in data["figures"] if "GFLOP/s against size" in f["layout"]["title"]["text"])
    assert {t["name"] for t in thr["data"]} == {"opencl[blocked]", "opencl[tiled]"}
    assert len({t["line"]["color"] for t in thr["data"]}) == 1 and len({t["line"]["dash"] for t in thr["data"]}) == 2


def test_roofline_without_calibration_draws_no_roof_and_says_how_to_calibrate(tmp_path):
    rng = random.Random(0)
    with ResultStore(tmp_path / "s.sqlite") as store:
        run = _run(store)
        store.add_result(run, matmul_result("numpy", "cpu", "float32", 512, 50.0, rng))
        path, _ = build_report(store, None, tmp_path / "r.html")
    text = path.read_text()
    section = text[text.index('<section id="roofline"'):text.index("</section>", text.index('<section id="roofline"'))]
    assert "sloped" not in section and "no roof is drawn" in section and "gpubench calibrate" in section
    roof = next(f for f in page_data(text)["figures"] if f["layout"]["title"]["text"].startswith("roofline"))
    assert all(t["mode"] == "markers" for t in roof["data"])


@pytest.mark.parametrize("command, quality, words", [
    ("gpubench calibrate --quick", None, "quick calibration, provisional"),
    ("gpubench calibrate", None, "measured"),
    ("gpubench calibrate --quick", "measured", "quick calibration, provisional"),
    ("gpubench calibrate", "datasheet", "datasheet"),
])
def test_roofline_draws_the_memory_slope_and_names_each_ceiling_source(tmp_path, command, quality, words):
    rng = random.Random(0)
    with ResultStore(tmp_path / "s.sqlite") as store:
        env = environment("h", gpu=False)
        cal = store.begin_run("calibrate", environment=env, command=command)
        store.add_ceiling(cal, "cpu", "peak_flops", 100.0, "GFLOP/s", dtype="float32", method="matmul 256³")
        store.add_ceiling(cal, "cpu", "mem_bw", 20.0, "GB/s", method="saxpy")
        if quality:  # the quality column as stored (a quick run's ceilings are provisional whatever it says)
            store.ceilings = lambda run_id, _c=store.ceilings: [{**c, "quality": quality} for c in _c(run_id)]
        run = _run(store, env)
        store.add_result(run, matmul_result("numpy", "cpu", "float32", 64, 5.0, rng))
        flagged = matmul_result("numpy", "cpu", "float32", 512, 130.0, rng)
        store.add_result(run, CaseResult(**{**flagged.__dict__, "flags": ("above_ceiling",)}))
        path, _ = build_report(store, [str(run)], tmp_path / "r.html")
    text = path.read_text()
    roof = next(f for f in page_data(text)["figures"] if f["layout"]["title"]["text"].startswith("roofline"))
    lines = {t["name"]: t for t in roof["data"] if t["mode"] == "lines"}
    slope = next(t for n, t in lines.items() if n.startswith("memory slope 20 GB/s"))
    assert slope["y"][1] / slope["x"][1] == pytest.approx(20.0) and slope["x"][1] == pytest.approx(5.0)  # ridge
    flat = next(t for n, t in lines.items() if n.startswith("float32 roof 100 GFLOP/s"))
    assert flat["y"] == [100.0, 100.0] and flat["x"][0] == pytest.approx(5.0)
    assert all(f"({words})" in n for n in lines)
    assert "sloped line" in text and words in text
    # The case above the ceiling is ringed and named.
    ring = next(t for t in roof["data"] if t.get("marker", {}).get("symbol") == "circle-open")
    assert len(ring["x"]) == 1 and "above_ceiling" in ring["text"][0]
    assert "1 case is above a ceiling" in text


def _speedup_store(path, gpu_noise):
    rng = random.Random(3)
    store = ResultStore(path)
    run = store.begin_run("matmul", baseline="numpy", environment=environment("h", gpu=True))
    store.add_result(run, matmul_result("numpy", "cpu", "float32", 1024, 50.0, rng, noise=0.01))
    store.add_result(run, matmul_result("torch", "cuda:0", "float32", 1024, 5000.0, rng, noise=gpu_noise))
    return store


def test_a_speedup_with_a_wide_interval_is_not_a_headline(tmp_path):
    with _speedup_store(tmp_path / "a.sqlite", 0.01) as store:
        lines = analysis.headlines(load_runs(store, None))
    assert any("torch:cuda:0 reaches" in ln and "× the fastest CPU backend" in ln for ln in lines), lines
    with _speedup_store(tmp_path / "b.sqlite", 1.5) as store:
        runs = load_runs(store, None)
        lines = analysis.headlines(runs)
    gpu = next(r for r in runs[0].rows if r["device"] == "cuda:0")
    assert gpu["speedup_cpu_ci"] > 0.2
    assert not any("× the fastest CPU backend" in ln for ln in lines), lines
    assert any("too noisy to quote" in ln for ln in lines)


def test_no_gpu_machine_headline_and_collapsed_hidden_skips(tmp_path):
    rng = random.Random(0)
    with ResultStore(tmp_path / "s.sqlite") as store:
        run = _run(store, command="gpubench run --suite matmul --quick")
        store.add_result(run, matmul_result("numpy", "cpu", "float32", 256, 50.0, rng))
        for i in range(5):
            store.add_result(run, CaseResult(CaseSpec.make("matmul", "cupy", "cuda", "float32",
                                                           {"m": 8 * (i + 1), "n": 8, "k": 8}),
                                             "skipped", error="cupy: not installed — pip install 'gpubench[cupy]'"))
        for i in range(3):
            store.add_result(run, CaseResult(CaseSpec.make("matmul", "torch", "cuda", "float32",
                                                           {"m": 8 * (i + 1), "n": 8, "k": 8}),
                                             "skipped", error="torch: no cuda device found"))
        path, _ = build_report(store, None, tmp_path / "r.html")
    text = path.read_text()
    glance = text[text.index('<section id="glance"'):text.index('<section id="machine"')]
    assert "this machine has no GPU" in glance and "pip install" not in glance and "--device cpu" in glance
    problems = text[text.index('<section id="problems"'):]
    assert '<details class="skips"><summary>8 skipped cases, 2 reasons (click to show)</summary>' in problems
    assert "<td>cupy</td><td>5</td><td>not installed" in problems and "<td>torch</td><td>3</td>" in problems
    assert 'id="cases-skipped"' in text and "show the 8 skipped cases" in text
    assert "command of run 1: gpubench run --suite matmul --quick" in text  # the footer's label


def test_noise_banner_counts_noisy_cases_and_shows_the_load(tmp_path):
    rng = random.Random(0)
    with ResultStore(tmp_path / "s.sqlite") as store:
        env = {**environment("h", gpu=False), "load_avg": [2.5, 1.75, 1.0]}
        run = _run(store, env)
        for i, size in enumerate((64, 128, 256, 512)):
            r = matmul_result("numpy", "cpu", "float32", size, 50.0, rng)
            noisy = i < 3
            store.add_result(run, CaseResult(**{**r.__dict__, "target_met": not noisy,
                                                "flags": ("noisy",) if noisy else ()}))
        path, _ = build_report(store, None, tmp_path / "r.html")
    text = path.read_text()
    assert '<div class="banner" role="note">⚠ 3 of 4 measured cases are noisy' in text
    assert "Load average when the run started: 2.5, 1.75, 1 (1, 5, 15 min) on 32 logical cores" in text


def test_one_sample_cases_read_one_run_and_opencl_on_a_cpu_is_named(tmp_path):
    rng = random.Random(0)
    with ResultStore(tmp_path / "s.sqlite") as store:
        env = environment("h", gpu=False)
        env["backends"]["opencl"] = {"available": True, "devices": [
            {"id": "opencl:0:0", "name": "pthread", "kind": "opencl", "hardware": "cpu",
             "details": {"platform": "Portable Computing Language", "type": "ALL | CPU"}}]}
        run = _run(store, env, suite="mnist")
        store.add_result(run, _mnist_result("numpy", "mlp", 0.5, 0.85, rng))
        store.add_result(run, CaseResult(CaseSpec.make("matmul", "opencl", "opencl", "float32",
                                                       {"m": 64, "n": 64, "k": 64}, variant="blocked"),
                                         "ok", samples=samples(1e-4, 7, rng), flops=2.0 * 64**3, spec_hash="o"))
        path, runs = build_report(store, None, tmp_path / "r.html")
    data = page_data(path.read_text())
    rows = {r[1]: r for r in data["table"]["rows"]}
    assert rows["mnist"][8][2] == 1 and rows["mnist"][14] == ""  # CI cell carries n = 1; no "noisy" note
    assert rows["matmul"][4] == "opencl (CPU, PoCL)"
    opencl = next(r for r in runs[0].rows if r["workload"] == "matmul")
    assert opencl["kind"] == "cpu"  # a CPU, whatever drives it: never an accelerator
    assert ">1 run<" in path.read_text()  # the MNIST table under the charts


def test_a_float64_gemm_on_an_h100_is_drawn_under_both_fp64_datasheet_roofs(tmp_path):
    rng = random.Random(0)
    with ResultStore(tmp_path / "s.sqlite") as store:
        env = environment("h", gpu=True)
        cal = store.begin_run("calibrate", environment=env, command="gpubench calibrate")
        store.add_ceiling(cal, "cuda:0", "peak_flops", 55_000.0, "GFLOP/s", dtype="float64", method="matmul 8192³")
        store.add_ceiling(cal, "cuda:0", "mem_bw", 3000.0, "GB/s", method="saxpy")
        run = _run(store, env)
        store.add_result(run, matmul_result("torch", "cuda:0", "float64", 8192, 55_000.0, rng))
        path, _ = build_report(store, [str(run)], tmp_path / "r.html")
    text = path.read_text()
    roof = next(f for f in page_data(text)["figures"] if f["layout"]["title"]["text"].startswith("roofline"))
    names = [t["name"] for t in roof["data"] if t["mode"] == "lines"]
    assert "H100 SXM FP64 tensor core 67 TFLOP/s (datasheet)" in names
    assert "H100 SXM FP64 vector 34 TFLOP/s (datasheet)" in names
    assert "FP64 vector TFLOP/s" in text and "FP64 tensor" in text  # the datasheet table names both

"""The report in a real browser: headless Chromium opens it from disk with no network.

Checks: no console output at all (every ``console.*`` call and every uncaught exception is
logged by Chromium as an ``INFO:CONSOLE`` line on stderr), the page's own error hook reports
nothing, every figure rendered (each plot ``div`` holds Plotly's ``main-svg``), the case table is
filled, and injected names stay text. The detector itself is tested on deliberately broken pages.
Skipped, with the reason, where Chromium is not installed (Debian: ``apt-get install chromium``).
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from history_store import history_store  # noqa: E402
from synthetic_results import (  # noqa: E402
    attention_results,
    calibration_run,
    cpu_machine_runs,
    lecture_run,
    synthetic_run,
)

from gpubench.records import CaseResult, CaseSpec  # noqa: E402
from gpubench.report.build import build_report  # noqa: E402
from gpubench.store import ResultStore  # noqa: E402

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (apt-get install chromium)")

EVIL = "<script>alert(1)</script>"
EVIL_IMG = '<img src=x onerror="alert(2)">'


def open_in_browser(page: Path, tmp_path: Path, budget_ms: int = 20000) -> tuple[str, list[str]]:
    """Load ``page`` from disk in headless Chromium without network; return (DOM after scripts, console lines)."""
    profile = tmp_path / "chromium-profile"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
           f"--user-data-dir={profile}", "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
           "--enable-logging=stderr", "--v=0", f"--virtual-time-budget={budget_ms}", "--dump-dom",
           page.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [ln for ln in proc.stderr.splitlines() if ":CONSOLE" in ln]
    return proc.stdout, console


class _Plots(HTMLParser):
    """Finds each ``div.plot`` and whether an ``svg.main-svg`` was drawn inside it."""

    def __init__(self) -> None:
        super().__init__()
        self.plots: dict[str, bool] = {}
        self.stack: list[str | None] = []
        self.rows = 0
        self.in_cases = False
        self.images: list[dict] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images.append(a)
        if tag == "table" and a.get("id") == "cases":
            self.in_cases = True
        if tag == "tr" and self.in_cases:
            self.rows += 1
        if tag in ("br", "img", "input", "meta", "link", "hr", "wbr"):
            return
        plot = a.get("id") if tag == "div" and "plot" in (a.get("class") or "").split() else None
        if plot:
            self.plots[plot] = False
        self.stack.append(plot)
        if tag == "svg" and "main-svg" in (a.get("class") or "").split():
            for p in self.stack:
                if p:
                    self.plots[p] = True

    def handle_endtag(self, tag):
        if tag == "table":
            self.in_cases = False
        if tag in ("br", "img", "input", "meta", "link", "hr", "wbr"):
            return
        if self.stack:
            self.stack.pop()


def parse(dom: str) -> _Plots:
    p = _Plots()
    p.feed(dom)
    return p


#: Measures the page once every figure is drawn: section and plot boxes, and inside each plot its plot
#: area, legend, titles and tick labels (page coordinates). Added to a copy of the report for the test
#: only (with the page's script policy removed), so the product page carries no measuring code.
MEASURE_JS = """
(function () {
  function box(el) {
    var r = el.getBoundingClientRect();
    return [r.left + window.scrollX, r.top + window.scrollY, r.width, r.height];
  }
  function all(root, sel) { return Array.prototype.map.call(root.querySelectorAll(sel), box); }
  function measure() {
    var out = {sections: [], plots: []};
    document.querySelectorAll("section").forEach(function (s) { out.sections.push({id: s.id, box: box(s)}); });
    document.querySelectorAll("div.plot").forEach(function (p) {
      out.plots.push({id: p.id, box: box(p), area: all(p, ".draglayer .nsewdrag"), legend: all(p, "g.legend"),
                      title: all(p, ".g-gtitle text"), xtitle: all(p, ".g-xtitle text"),
                      xticks: all(p, "g.xtick text"), yticks: all(p, "g.ytick text"),
                      points: all(p, ".scatterlayer path.point")});
    });
    var pre = document.createElement("pre");
    pre.id = "gpubench-layout";
    pre.textContent = JSON.stringify(out);
    document.body.appendChild(pre);
  }
  function wait() {
    var b = document.body;
    if (b.getAttribute("data-plots-rendered") === b.getAttribute("data-plots-expected")
        || b.getAttribute("data-plots-expected") === "0") { setTimeout(measure, 200); }
    else { setTimeout(wait, 100); }
  }
  wait();
})();
"""


def layout_boxes(page: Path, tmp_path: Path, width: int = 1400) -> dict:
    """Boxes of the report's sections and of each plot's parts, as laid out by Chromium at ``width`` pixels."""
    text = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page.read_text(encoding="utf-8"))
    text = text.replace("</body>", f"<script>{MEASURE_JS}</script></body>")
    measured = tmp_path / f"measured-{width}.html"
    measured.write_text(text, encoding="utf-8")
    profile = tmp_path / "chromium-profile-measure"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
           f"--user-data-dir={profile}", "--proxy-server=127.0.0.1:9", f"--window-size={width},1000",
           "--virtual-time-budget=30000", "--dump-dom", measured.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    m = re.search(r'<pre id="gpubench-layout">(.*?)</pre>', proc.stdout, re.S)
    assert m, "the page was not measured: " + proc.stderr[-1000:]
    return json.loads(html.unescape(m.group(1)))


def overlap(a: list[float], b: list[float], tol: float = 0.5) -> bool:
    """Whether two boxes ``[x, y, w, h]`` intersect by more than ``tol`` pixels both ways."""
    return (min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]) > tol
            and min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]) > tol)


def inside(inner: list[float], outer: list[float], tol: float = 1.0) -> bool:
    """Whether box ``inner`` lies within ``outer``."""
    return (inner[0] >= outer[0] - tol and inner[1] >= outer[1] - tol
            and inner[0] + inner[2] <= outer[0] + outer[2] + tol and inner[1] + inner[3] <= outer[1] + outer[3] + tol)


def layout_problems(boxes: dict) -> list[str]:
    """Every overlap a reader would see: sections or plots on each other, a plot's parts outside its box,
    its legend over the plot area or the axis, tick labels on each other, a plot area too small to read."""
    bad = []
    secs = [s for s in boxes["sections"] if s["box"][3] > 0]
    for i, a in enumerate(secs):
        for b in secs[i + 1:]:
            if overlap(a["box"], b["box"]):
                bad.append(f"sections {a['id']} and {b['id']} overlap")
    plots = [p for p in boxes["plots"] if p["box"][3] > 0]
    for i, a in enumerate(plots):
        for b in plots[i + 1:]:
            if overlap(a["box"], b["box"]):
                bad.append(f"plots {a['id']} and {b['id']} overlap")
    for p in plots:
        pid = p["id"]
        for part in ("area", "legend", "title", "xtitle", "xticks", "yticks"):
            for bx in p[part]:
                if bx[2] > 0 and not inside(bx, p["box"]):
                    bad.append(f"{pid}: {part} {bx} outside the plot's box {p['box']}")
        for area in p["area"]:
            if area[3] < 120 or area[2] < 200:
                bad.append(f"{pid}: plot area {area} too small to read")
            for part in ("legend", "xtitle", "title"):
                for bx in p[part]:
                    if overlap(bx, area, tol=2):
                        bad.append(f"{pid}: {part} {bx} covers the plot area {area}")
        for leg in p["legend"]:
            for part in ("xticks", "xtitle"):
                for bx in p[part]:
                    if bx[2] > 0 and overlap(leg, bx):
                        bad.append(f"{pid}: the legend covers the x axis ({part})")
        ticks = sorted((t for t in p["xticks"] if t[2] > 0), key=lambda t: t[0])
        for a, b in zip(ticks, ticks[1:]):
            if overlap(a, b, tol=0):
                bad.append(f"{pid}: x tick labels overlap")
    return bad


def page_errors(dom: str) -> int:
    m = re.search(r'<html[^>]*data-errors="(\d+)"', dom)
    return int(m.group(1)) if m else 0


# --- the detector catches broken pages -------------------------------------------------------------


def test_detector_catches_exceptions_console_errors_and_network(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><html><body><div class='plot' id='p'></div>"
                    "<script>console.error('deliberate');</script>"
                    "<script>notAFunction();</script>"
                    "<script>fetch('https://example.com/').catch(function (e) { console.log('offline ' + e); });"
                    "</script></body></html>")
    dom, console = open_in_browser(page, tmp_path, budget_ms=3000)
    text = "\n".join(console)
    assert "deliberate" in text
    assert "Uncaught ReferenceError" in text
    assert "Failed to fetch" in text  # no network: the fetch could not go out
    assert parse(dom).plots == {"p": False}  # an empty plot div is seen as not rendered


@pytest.mark.parametrize("breakage", ["missing-plot-element", "corrupt-plotly"])
def test_detector_catches_a_report_whose_plotting_fails(tmp_path, breakage):
    with ResultStore(tmp_path / "s.sqlite") as store:
        synthetic_run(store, 40, gpu=False)
        path, _ = build_report(store, ["latest"], tmp_path / "r.html")
    text = path.read_text()
    if breakage == "missing-plot-element":
        text = text.replace('<div class="plot" id="fig0">', '<div class="plot" id="renamed">', 1)
    else:  # a damaged plotly.js (a syntax error, and no longer the script the page's policy allows)
        assert text.count("var Plotly=(") == 1
        text = text.replace("var Plotly=(", "var Plotly=((", 1)
    broken = tmp_path / "broken-report.html"
    broken.write_text(text)
    dom, console = open_in_browser(broken, tmp_path)
    assert console, "the breakage left no console line"
    assert not all(parse(dom).plots.values())


# --- the real report --------------------------------------------------------------------------------


@pytest.fixture
def report(tmp_path) -> tuple[Path, int]:
    """A two-run report (GPU, transfers, training curves, attention, every status) plus injection attempts."""
    with ResultStore(tmp_path / "s.sqlite") as store:
        calibration_run(store)
        first = synthetic_run(store, 120, seed=1, label=EVIL_IMG)
        attention_results(store, first)
        second = synthetic_run(store, 120, seed=2, label="second machine", backend_name=EVIL, device_name="cuda:0")
        spec = CaseSpec.make("matmul", EVIL, EVIL_IMG, "float32", {"m": 64, "n": 64, "k": 64})
        store.add_result(second, CaseResult(spec, "error", error=f"</script>{EVIL} failed"))
        path, runs = build_report(store, [str(first), str(second)], tmp_path / "report.html")
    return path, sum(1 for r in runs for row in r.rows if row["status"] != "skipped")


def test_report_renders_every_plot_without_console_output(report, tmp_path):
    path, n_cases = report
    dom, console = open_in_browser(path, tmp_path)
    assert console == [], console
    assert page_errors(dom) == 0
    found = parse(dom)
    assert len(found.plots) >= 8
    assert all(found.plots.values()), [k for k, v in found.plots.items() if not v]
    expected = re.search(r'data-plots-expected="(\d+)"', dom)
    rendered = re.search(r'data-plots-rendered="(\d+)"', dom)
    assert expected and rendered and expected.group(1) == rendered.group(1) == str(len(found.plots))
    # Every case but the skipped ones (hidden until asked for) is a row of the sortable table, plus the header.
    assert found.rows == n_cases + 1


def test_injected_names_stay_text_in_the_browser(report, tmp_path):
    path, _ = report
    dom, console = open_in_browser(path, tmp_path)
    assert console == []
    # No element was created from a name: the only images are none at all.
    assert parse(dom).images == []
    # The names are on the page, as text.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    assert "&lt;img src=x" in dom


# --- layout: nothing covers anything ----------------------------------------------------------------


@pytest.mark.parametrize("width", [1400, 900])
def test_sections_and_plots_do_not_overlap(report, tmp_path, width):
    path, _ = report
    boxes = layout_boxes(path, tmp_path, width)
    assert len(boxes["plots"]) >= 8 and len(boxes["sections"]) >= 6
    assert layout_problems(boxes) == []


def test_a_cpu_machine_report_lays_out_cleanly(tmp_path):
    with ResultStore(tmp_path / "s.sqlite") as store:
        matmul, mnist, _ = cpu_machine_runs(store)
        path, _ = build_report(store, [str(matmul), str(mnist)], tmp_path / "r.html")
    dom, console = open_in_browser(path, tmp_path)
    assert console == [] and page_errors(dom) == 0 and all(parse(dom).plots.values())
    assert "1 run" in dom  # one-sample MNIST cases, in the table the page draws
    boxes = layout_boxes(path, tmp_path)
    assert layout_problems(boxes) == []
    # The accuracy chart keeps its x axis and legend: every one of its points is inside its plot area.
    acc = next(p for p in boxes["plots"] if p["legend"] and len(p["points"]) >= 9)
    assert acc["xticks"] and acc["xtitle"]
    area = acc["area"][0]
    assert all(inside(pt, area, tol=6) for pt in acc["points"])


def test_the_layout_check_catches_a_legend_that_overflows(tmp_path):
    from gpubench.report.page import assemble

    names = [f"series number {i} with a long descriptive name" for i in range(16)]
    fig = {"id": "fig0", "data": [{"type": "scatter", "x": [1, 2], "y": [i, i + 1], "name": n}
                                  for i, n in enumerate(names)],
           "layout": {"height": 320, "legend": {"orientation": "h", "y": -0.2}}}  # no fit_legend
    body = '<section id="a"><div class="plot" id="fig0"></div></section><section id="b"><p>next</p></section>'
    page = tmp_path / "broken.html"
    page.write_text(assemble(title="t", subtitle="", nav=[], body=body, footer="", figures=[fig]))
    problems = layout_problems(layout_boxes(page, tmp_path))
    assert any("legend" in p for p in problems), problems


def test_history_page_renders_cleanly(tmp_path, cli):
    store = tmp_path / "h.sqlite"
    history_store(store, n_runs=9, step_at=5).close()
    out = tmp_path / "history.html"
    code, _, err = cli("history", "--store", str(store), "-o", str(out))
    assert code == 0, err
    dom, console = open_in_browser(out, tmp_path)
    assert console == [] and page_errors(dom) == 0
    found = parse(dom)
    assert len(found.plots) == 4 and all(found.plots.values())
    assert layout_problems(layout_boxes(out, tmp_path)) == []


# --- the lecture's experiment: three ways to time it ------------------------------------------------


@pytest.fixture
def lecture_report(tmp_path) -> Path:
    """A GPU machine's and a CPU-only machine's ``lecture`` runs, overlaid: one three-ways chart each."""
    with ResultStore(tmp_path / "s.sqlite") as store:
        calibration_run(store)
        gpu = lecture_run(store)
        cpu = lecture_run(store, seed=2, gpu=False, label="cpu only", hostname="cpu-host")
        path, _ = build_report(store, [str(gpu), str(cpu)], tmp_path / "lecture.html")
    return path


def test_the_lecture_section_renders_without_console_output(lecture_report, tmp_path):
    dom, console = open_in_browser(lecture_report, tmp_path)
    assert console == [], console
    assert page_errors(dom) == 0
    found = parse(dom)
    assert all(found.plots.values()), [k for k, v in found.plots.items() if not v]
    section = dom.split('<section id="three-ways">')[1].split("</section>")[0]
    drawn = re.findall(r'<div class="plot[^"]*" id="(fig\d+)"', section)
    assert len(drawn) == 2 and all(found.plots[f] for f in drawn)  # one chart per run
    assert section.count('class="trace bars"') == 6  # three ways, drawn as bars, on each chart
    assert "naive speedup here (way 1)" in section and "honest speedup (way 3)" in section


@pytest.mark.parametrize("width", [1400, 900])
def test_the_lecture_section_lays_out_cleanly(lecture_report, tmp_path, width):
    boxes = layout_boxes(lecture_report, tmp_path, width)
    assert layout_problems(boxes) == []

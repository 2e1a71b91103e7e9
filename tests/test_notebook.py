"""The example notebook (docs/gpubench-colab.ipynb): committed without outputs, and every cell runs.

The notebook is executed as Jupyter would run it, by nbclient, in a kernel of the interpreter that runs these
tests (a kernel spec written into a temporary ``JUPYTER_PATH``), in a temporary directory. On this machine (no
GPU) it takes its CPU path: the lecture's suite, quick, on NumPy and PyTorch.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import sys
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "gpubench-colab.ipynb"


def test_the_notebook_is_committed_without_outputs():
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "the notebook has no code"
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, cell.source[:80]
        assert not cell.metadata, cell.metadata
    assert "widgets" not in nb.metadata  # no widget state saved
    assert NOTEBOOK.stat().st_size < 20_000


def _kernel(tmp_path: Path, monkeypatch) -> str:
    """A kernel spec running this interpreter, found through ``$JUPYTER_PATH``; returns its name."""
    name = "gpubench-test"
    spec = tmp_path / "jupyter" / "kernels" / name
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "gpubench tests", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return name


def execute_notebook(tmp_path: Path, monkeypatch, timeout: int = 300):
    """Run every cell of the notebook in ``tmp_path / "work"``; return the executed notebook."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.delenv("GPUBENCH_STORE", raising=False)  # the notebook's default store, in its directory
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name=_kernel(tmp_path, monkeypatch),
                                     resources={"metadata": {"path": str(work)}})
    client.execute()  # raises CellExecutionError, naming the cell, when one fails
    return nb, work


def _html_outputs(cell) -> list[str]:
    return [o["data"]["text/html"] for o in cell.outputs if "text/html" in o.get("data", {})]


@pytest.mark.slow
def test_every_cell_of_the_notebook_runs(tmp_path, monkeypatch):
    nb, work = execute_notebook(tmp_path, monkeypatch)
    code = [c for c in nb.cells if c.cell_type == "code"]
    for cell in code:
        assert not [o for o in cell.outputs if o.output_type == "error"], cell.source[:80]
    install, run_cell, frame_cell, report_cell = code
    assert not [o for o in install.outputs if o.output_type == "stream"]  # installed already: nothing to do
    # The run, displayed: its header, headlines and table.
    [summary] = _html_outputs(run_cell)
    assert "run 1</b> · suite lecture" in summary and "<table>" in summary and "numpy" in summary
    assert "The lecture&#x27;s experiment" in summary
    # The DataFrame of its rows.
    assert _html_outputs(frame_cell) and "matmul" in _html_outputs(frame_cell)[0]
    # The report, inline: an iframe whose srcdoc is the report written to reports/.
    [inline] = _html_outputs(report_cell)
    assert inline.startswith("<iframe srcdoc=") and "gpubench report" in inline
    assert (work / "reports" / "run-1.html").is_file()
    with sqlite3.connect(work / "results" / "gpubench.sqlite") as db:
        runs = db.execute("SELECT suite, status, command FROM runs").fetchall()
        statuses = [s for (s,) in db.execute("SELECT status FROM results")]
    assert runs == [("lecture", "complete", "gpubench.run('lecture', backends=['numpy', 'torch'], devices='cpu', "
                                            "quick=True)")]
    assert statuses and set(statuses) <= {"ok", "skipped"}


# --- the report inline, in a real browser ----------------------------------------------------------------------

sys.path.insert(0, str(Path(__file__).parent))

from browser_pipe import CHROMIUM, Browser, BrowserUnavailable  # noqa: E402

PLOTS_DONE = ("(function () { var b = document.body; var e = b.getAttribute('data-plots-expected');"
              " return e !== null && b.getAttribute('data-plots-rendered') === e && Number(e); })()")


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (apt-get install chromium)")
def test_the_inline_report_draws_its_charts_and_keeps_its_links_in_the_frame(tmp_path):
    """The report inside a notebook's output (an iframe srcdoc, sandboxed): its scripts run under its own policy,
    every chart is drawn, nothing is logged, and a click on its navigation scrolls the frame instead of loading
    the notebook's page into it (an about:srcdoc page's links resolve against the notebook's address)."""
    from synthetic_results import lecture_run

    from gpubench.report.inline import report
    from gpubench.store import ResultStore

    with ResultStore(tmp_path / "s.sqlite") as store:
        lecture_run(store, gpu=True)
    inline = report(None, tmp_path / "r.html", store=tmp_path / "s.sqlite")._repr_html_()
    page = tmp_path / "notebook.html"  # as a notebook's page holds an output: the HTML as it is, in the page
    page.write_text(f"<!DOCTYPE html><html><body><h1>a notebook</h1><div class='output'>{inline}</div>"
                    "<div style='height:3000px'></div></body></html>", encoding="utf-8")
    stack = contextlib.ExitStack()
    try:
        b = stack.enter_context(Browser(width=1300, height=1000))  # one Chromium, closed when the test ends
    except BrowserUnavailable as exc:
        pytest.skip(str(exc))
    with stack:
        b.open(page.as_uri())
        frame = b.wait_for_frame(lambda ctx: b.evaluate("location.href", ctx) == "about:srcdoc")
        assert b.wait_until(PLOTS_DONE, frame) >= 3
        assert b.evaluate("document.documentElement.getAttribute('data-errors')", frame) is None
        assert b.evaluate("document.querySelectorAll('#cases tbody tr').length", frame) > 0
        assert b.console == []
        box = b.evaluate("(function () { var r = document.querySelector('iframe').getBoundingClientRect();"
                         " return [r.left, r.top]; })()")
        link = b.evaluate("(function () { var a = document.querySelector('nav a[href=\"#cases\"]');"
                          " var r = a.getBoundingClientRect();"
                          " return [r.left + r.width / 2, r.top + r.height / 2]; })()", frame)
        b.click(box[0] + link[0], box[1] + link[1])
        b.pump(0.5)
        assert b.evaluate("location.href", frame) == "about:srcdoc"  # still the report, in the same frame
        assert b.evaluate("window.scrollY", frame) > 500  # scrolled to the case table
        assert b.evaluate("window.scrollY") == 0  # the notebook's page did not move

"""Which progress display a run gets (plain lines, gpubench's bar, tqdm, tqdm's notebook widget), and the tqdm
bar: elapsed and estimated time left, skips collapsed per backend and reason, failures written above it."""

from __future__ import annotations

import re

import pytest
from terminal import FakeStream

from gpubench.progress import (
    Progress,
    TqdmProgress,
    in_notebook,
    is_ci,
    make_progress,
    progress_kind,
)
from gpubench.records import CaseResult, CaseSpec


def spec(backend: str = "numpy", device: str = "cpu", size: int = 64, variant: str | None = None) -> CaseSpec:
    extra = {"variant": variant} if variant else {}
    return CaseSpec("matmul", backend, device, "float32", params=(("size", size),), **extra)


def ok(s: CaseSpec) -> CaseResult:
    return CaseResult(s, "ok", samples=(0.001,), number=1, clock="fake")


@pytest.mark.parametrize(("tty", "environ", "notebook", "tqdm", "widgets", "kind"), [
    # CI: plain lines, whatever else holds.
    (True, {"CI": "true"}, False, True, True, "lines"),
    (False, {"CI": "1"}, True, True, True, "lines"),
    # A terminal: tqdm where installed, else gpubench's own bar.
    (True, {}, False, True, False, "tqdm"),
    (True, {"CI": "false"}, False, True, False, "tqdm"),
    (True, {}, False, False, False, "bar"),
    # Output that is neither a terminal nor a notebook (a pipe, a file, a log): lines.
    (False, {}, False, True, True, "lines"),
    # A notebook (its output is no terminal): the widget with ipywidgets, tqdm's text bar without, lines without tqdm.
    (False, {}, True, True, True, "notebook"),
    (False, {}, True, True, False, "tqdm"),
    (False, {}, True, False, True, "lines"),
])
def test_the_display_is_chosen_by_where_the_output_goes(tty, environ, notebook, tqdm, widgets, kind):
    assert progress_kind(FakeStream(tty), environ=environ, notebook=notebook, tqdm=tqdm, widgets=widgets) == kind


def test_ci_and_notebook_detection():
    assert is_ci({"CI": "true"}) and is_ci({"CI": "yes"}) and is_ci({"CI": "1"})
    assert not is_ci({}) and not is_ci({"CI": ""}) and not is_ci({"CI": "false"}) and not is_ci({"CI": "0"})
    assert not in_notebook()  # pytest is no Jupyter kernel


def test_make_progress_builds_the_chosen_display():
    pytest.importorskip("tqdm")
    lines = make_progress(FakeStream(tty=True), kind="lines")
    bar = make_progress(FakeStream(tty=False), kind="bar")
    tq = make_progress(FakeStream(tty=True), kind="tqdm")
    assert type(lines) is Progress and not lines.tty
    assert type(bar) is Progress and bar.tty
    assert isinstance(tq, TqdmProgress) and not tq.notebook
    with pytest.raises(ValueError, match="unknown progress display"):
        make_progress(FakeStream(), kind="fancy")


def test_lines_keep_their_format(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    now = [10.0]
    stream = FakeStream()
    p = make_progress(stream, kind="lines", start=0.0, clock=lambda: now[0])
    p.eta = lambda: 222.0
    s = spec()
    p.update(0, 2, s, None)
    p.update(1, 2, s, ok(s))
    p.finish()
    assert stream.getvalue() == "[1/2] ok        matmul numpy:cpu float32 size=64  1 ms  (10s, ~3m42s left)\n"


def test_the_tqdm_bar_shows_time_spent_and_left_and_collapses_skips(monkeypatch):
    pytest.importorskip("tqdm")
    monkeypatch.setenv("COLUMNS", "120")
    now = [0.0]
    stream = FakeStream(tty=True)
    p = TqdmProgress(stream, clock=lambda: now[0], start=0.0)
    p.eta = lambda: 222.0
    cases = ([(spec("numpy", "cpu", 64 * i), None) for i in (1, 2)]
             + [(spec("torch", "cuda", 64 * i), "torch: no cuda device found") for i in (1, 2, 3)]
             + [(spec("torch", "cpu"), "error")]
             + [(spec("cupy", "cuda", 64 * i, variant="x"), "cupy: no CUDA driver found") for i in range(1, 6)])
    for i, (s, reason) in enumerate(cases):
        now[0] = 75.0 * i
        p.update(i, len(cases), s, None)
        if reason == "error":
            result = CaseResult(s, "error", error="worker died (SIGSEGV)")
        else:
            result = ok(s) if reason is None else CaseResult(s, "skipped", error=reason)
        p.update(i + 1, len(cases), s, result)
    p.finish()
    text = stream.getvalue()
    screens = [seg for ln in text.split("\n") for seg in ln.split("\r") if seg.strip()]
    skip_lines = [ln.strip() for ln in screens if re.match(r"\d+ \w+ cases? skipped", ln.strip())]
    assert skip_lines == ["3 torch cases skipped: no cuda device found", "5 cupy cases skipped: no CUDA driver found"]
    assert text.index("3 torch cases") < text.index("5 cupy cases")
    assert any(ln.startswith("error     matmul torch:cpu float32 size=64  worker died (SIGSEGV)") for ln in screens)
    # The bar: counts, the time since the start and the estimate of what is left, the current case.
    assert any(re.match(r"6/11 \|.*\| 6m15s, ~3m42s left +error +matmul torch:cpu", ln) for ln in screens), screens
    assert re.match(r"11/11 \|[#█]+\| 12m30s, ~3m42s left +skipped +matmul cupy", screens[-1]), screens[-1]
    assert all(len(seg) <= 120 for seg in screens)


def test_a_bar_cut_short_keeps_the_point_it_reached():
    pytest.importorskip("tqdm")
    stream = FakeStream(tty=True)
    p = TqdmProgress(stream)
    s = spec()
    p.update(0, 4, s, None)
    p.update(1, 4, s, ok(s))
    p.finish(cut_short=True)
    assert "1/4 |" in stream.getvalue().split("\r")[-1]
    done = FakeStream(tty=True)
    q = TqdmProgress(done)
    q.update(1, 4, s, ok(s))
    q.finish()  # a time limit left the rest out: the run is over, the bar full
    assert "1/1 |" in done.getvalue().split("\r")[-1]


def test_the_notebook_widget_writes_its_lines_to_the_stream():
    pytest.importorskip("ipywidgets")
    pytest.importorskip("tqdm")
    stream = FakeStream()
    p = make_progress(stream, kind="notebook")
    assert isinstance(p, TqdmProgress) and p.notebook
    s = spec("cupy", "cuda")
    p.update(0, 2, s, None)
    p.update(1, 2, s, CaseResult(s, "skipped", error="cupy: no CUDA driver found"))
    p.update(2, 2, s, CaseResult(s, "skipped", error="cupy: no CUDA driver found"))
    p.finish()
    assert stream.getvalue().strip() == "2 cupy cases skipped: no CUDA driver found"

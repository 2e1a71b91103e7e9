"""The Python API (gpubench.run, Run, gpubench.report, gpubench.compare): the command line's path, not a second one.

``gpubench.run()`` and ``gpubench run`` store the same records for the same suite; a run displayed in a notebook
is its headlines and table; the report shown inline is an iframe whose ``srcdoc`` is the report, whose charts draw
in a real browser (under the report's own script policy) and whose navigation stays inside the frame; bad input
is the UsageError the command line exits 2 with; Ctrl-C leaves the run ``interrupted`` with its finished cases.
"""

from __future__ import annotations

import html
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_gpubench

import gpubench
from gpubench.errors import UsageError

SUITE = """name = "one"
baseline = "numpy"

[[cases]]
workload = "matmul"
backends = ["numpy"]
dtypes = ["float32"]
params = { size = [64, 96] }

[[cases]]
workload = "saxpy"
backends = ["numpy", "cupy"]
dtypes = ["float32"]
params = { n = 4096 }
"""


@pytest.fixture(scope="module")
def api_run(tmp_path_factory):
    """One run of the small suite through the API, in a store of its own: ``(run, suite file, store)``."""
    tmp = tmp_path_factory.mktemp("api")
    suite = tmp / "one.toml"
    suite.write_text(SUITE)
    store = tmp / "api.sqlite"
    run = gpubench.run(suite, quick=True, store=store, label="from python")
    return run, suite, store


def records(store: Path) -> list[dict]:
    with sqlite3.connect(store) as db:
        return [json.loads(r) for (r,) in db.execute("SELECT record FROM results ORDER BY id")]


def run_row(store: Path) -> dict:
    with sqlite3.connect(store) as db:
        db.row_factory = sqlite3.Row
        return dict(db.execute("SELECT * FROM runs").fetchone())


def test_api_and_command_line_store_the_same_records(api_run, tmp_path):
    """Field by field, but for what was measured (timings, the machine's state around them)."""
    run, suite, api_store = api_run
    cli_store = tmp_path / "cli.sqlite"
    proc = run_gpubench("run", "--suite", str(suite), "--quick", "--label", "from python", "--store", str(cli_store))
    assert proc.returncode == 0, proc.stderr
    from_api, from_cli = records(api_store), records(cli_store)
    assert len(from_api) == len(from_cli) == 6  # two matmul sizes and a SAXPY on NumPy; three CuPy SAXPYs
    assert [r["status"] for r in from_api] == [r["status"] for r in from_cli]
    measured = {"samples", "host_samples", "number", "target_met", "wall_s", "flags", "machine", "energy"}
    for a, c in zip(from_api, from_cli):
        assert set(a) == set(c)
        for record in (a, c):
            for seconds in ("reference_s", "check_s"):  # how long the reference and its check took: measured
                (record.get("metrics") or {}).pop(seconds, None)
        assert {k: v for k, v in a.items() if k not in measured} == {k: v for k, v in c.items() if k not in measured}
    # The runs themselves: the same suite, baseline, label, status and settings; each names its own command.
    a_run, c_run = run_row(api_store), run_row(cli_store)
    for key in ("suite", "baseline", "label", "status", "reason", "settings"):
        assert a_run[key] == c_run[key], key
    settings = json.loads(a_run["settings"])
    assert settings["source"] == "run" and settings["budget_s"] == 0.25 and settings["planned_cases"] == 6  # --quick
    assert a_run["command"] == (f"gpubench.run({str(suite)!r}, quick=True, label='from python', "
                                f"store={str(api_store)!r})")
    assert c_run["command"].startswith("gpubench run --suite ")
    assert run.id == 1 and run.status == "complete" and run.suite == "one" and run.label == "from python"


def test_the_run_object(api_run, capsys, cli, monkeypatch):
    run, _, store = api_run
    # Its rows are gpubench.load()'s.
    frame = run.to_pandas()
    assert frame.equals(gpubench.load(store, run=run.id)) and len(frame) == 6
    # show() prints what `gpubench show` prints.
    run.show()
    shown = capsys.readouterr().out
    code, out, _ = cli("show", str(run.id), "--store", str(store))
    assert code == 0 and shown == out and "matmul" in shown
    # Reopened by id, or as the latest run of its store.
    again = gpubench.Run(run.id, store=store)
    assert (again.id, again.status, again.store) == (run.id, "complete", str(store))
    assert gpubench.Run("latest", store=store).id == run.id
    assert repr(run) == "<gpubench.Run 1: suite 'one', complete>"
    # A later chdir does not move a store given as a relative path.
    monkeypatch.chdir(store.parent)
    relative = gpubench.Run(run.id, store=store.name)
    monkeypatch.chdir(store.parent.parent)
    assert relative.to_pandas().equals(frame)


def test_a_run_displays_its_headlines_and_table(api_run):
    run, _, _ = api_run
    shown = run._repr_html_()
    assert shown.startswith('<div class="gpubench-run">') and "<script" not in shown
    assert "<b>run 1</b> · suite one" in shown and "<b>complete</b>" in shown and "label from python" in shown
    # The headline the report opens with, and the table `gpubench show` prints (its columns and rows).
    assert "matmul float32 at 96³: fastest is numpy:cpu" in shown
    table = re.search(r"<table>.*?</table>", shown).group(0)
    assert "<th" in table and ">median</th>" in table and table.count("<tr>") == 1 + 3  # header and the ok cases
    assert "cupy case" in shown and "skipped" in shown and "cupy</td>" not in shown  # a skip line, not rows
    assert ".report()" in shown


def test_the_inline_report_is_an_iframe_whose_srcdoc_is_the_report(api_run, tmp_path, monkeypatch):
    run, _, store = api_run
    report = run.report(tmp_path / "r.html")
    assert report.path == tmp_path / "r.html" and report.runs == [run.id] and report.cases == 6
    assert report.html == (tmp_path / "r.html").read_text(encoding="utf-8")
    inline = report._repr_html_()
    m = re.fullmatch(r'<iframe srcdoc="([^"]*)" sandbox="([^"]*)" title="[^"]*" style="[^"]*"></iframe>', inline)
    assert m, inline[:300]
    assert html.unescape(m.group(1)) == report.html
    assert m.group(2).split() == ["allow-scripts", "allow-downloads"]  # no allow-same-origin: sandboxed from Jupyter
    # The default place, as `gpubench report` writes it; gpubench.report is the same function.
    monkeypatch.chdir(tmp_path)
    default = gpubench.report(run.id, store=store)
    assert default.path == Path("reports") / f"run-{run.id}.html" and (tmp_path / default.path).is_file()


def test_report_and_compare_are_callable_after_their_modules_are_imported(api_run, tmp_path):
    import gpubench.compare
    import gpubench.report.build  # noqa: F401 - the package attribute is the package, and still callable

    run, _, store = api_run
    assert callable(gpubench.report) and gpubench.report.build.render
    comparison = gpubench.compare(run.id, run.id, store=store)
    assert comparison.shared == 6 and not comparison.regressions
    assert str(comparison) == gpubench.compare.format_table(comparison)
    inline = comparison._repr_html_()
    assert inline.startswith("<iframe srcdoc=") and 'sandbox=""' in inline  # the comparison page has no script
    first = gpubench.compare(against_last=3, store=store)
    assert not first.cases and "nothing to compare yet" in first.note and "nothing to compare yet" in str(first)


@pytest.mark.parametrize(("call", "message"), [
    (lambda s: gpubench.run("nope", store=s), "unknown suite 'nope'"),
    (lambda s: gpubench.run(3, store=s), "suite: a built-in suite's name"),
    (lambda s: gpubench.run("matmul", backends="", store=s), "--backend: empty value"),
    (lambda s: gpubench.run("matmul", backends=[], store=s), "backends: an empty list"),
    (lambda s: gpubench.run("matmul", backends=3, store=s), "backends: a name or a list of names"),
    (lambda s: gpubench.run("matmul", devices=["cpu", None], store=s), "devices: a name or a list of names"),
    (lambda s: gpubench.run("matmul", backends="nosuch", store=s), "nosuch"),
    (lambda s: gpubench.run("matmul", quick="yes", store=s), "quick must be True or False"),
    (lambda s: gpubench.run("matmul", time_limit="soon", store=s), "--time-limit must be a duration"),
    (lambda s: gpubench.run("matmul", time_limit=0, store=s), "--time-limit must be a positive duration"),
    (lambda s: gpubench.run("matmul", timeout=-1, store=s), "--timeout must be a positive"),
    (lambda s: gpubench.run("matmul", timeout="1", store=s), "timeout must be a number"),
    (lambda s: gpubench.run("matmul", budget=0, store=s), "--budget must be a positive"),
    (lambda s: gpubench.run("matmul", target=5, store=s), "--target must be a fraction"),
    (lambda s: gpubench.run("matmul", wait_idle=-1, store=s), "--wait-idle must be a non-negative"),
    (lambda s: gpubench.run("matmul", label=3, store=s), "label must be a string"),
    (lambda s: gpubench.run("matmul", ref_cache="", store=s), "--ref-cache must name a directory"),
    (lambda s: gpubench.run("matmul", store=5), "store: a path or a URL"),
    (lambda s: gpubench.Run(1, store=s), "no results store at"),
    (lambda s: gpubench.report([1.5], store=s), "runs: a run id"),
    (lambda s: gpubench.compare(None, 2, store=s), "give two runs"),
    (lambda s: gpubench.compare(1, 2, threshold=-1, store=s), "--threshold must be a non-negative"),
    (lambda s: gpubench.compare(1, against_last=2, store=s), "with --against-last N give only"),
])
def test_bad_input_is_a_usage_error_and_writes_nothing(tmp_path, call, message):
    store = tmp_path / "never.sqlite"
    with pytest.raises(UsageError) as info:
        call(store)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert not store.exists()


@pytest.mark.parametrize(("args", "kwargs"), [
    (["--suite", "nope"], {"suite": "nope"}),
    (["--suite", "matmul", "--time-limit", "soon"], {"suite": "matmul", "time_limit": "soon"}),
    (["--suite", "matmul", "--backend", ""], {"suite": "matmul", "backends": ""}),
    (["--suite", "matmul", "--target", "5"], {"suite": "matmul", "target": 5}),
])
def test_the_api_raises_the_error_the_command_line_exits_2_with(tmp_path, cli, args, kwargs):
    store = tmp_path / "never.sqlite"
    code, _, err = cli("run", *args, "--store", str(store))
    with pytest.raises(UsageError) as info:
        gpubench.run(kwargs.pop("suite"), store=store, **kwargs)
    assert code == 2 and err == f"gpubench: error: {info.value}\n"


def test_the_command_line_is_a_thin_layer_over_the_same_function(monkeypatch, cli, tmp_path):
    from gpubench import runsuite

    seen = []

    def fake(request, **kw):
        seen.append((request, kw))
        return runsuite.RunOutcome(None, "", exit_code=0)

    monkeypatch.setattr(runsuite, "execute", fake)
    code, _, _ = cli("run", "--suite", "matmul", "--backend", "numpy,torch", "--device", "cpu", "--quick",
                     "--time-limit", "8m", "--label", "x", "--store", str(tmp_path / "s.sqlite"), "--dry-run")
    [(request, kw)] = seen
    assert code == 0 and kw["dry_run"] is True
    assert (request.suite, request.backends, request.devices, request.quick, request.time_limit, request.label) == \
           ("matmul", ("numpy,torch",), ("cpu",), True, "8m", "x")


def test_ctrl_c_leaves_the_run_interrupted_with_its_finished_cases(tmp_path, monkeypatch):
    """A notebook's interrupt is SIGINT to the kernel: the run keeps what finished and is returned, interrupted."""
    from gpubench.runner import Runner

    original = Runner._run_one
    calls = []

    def second_case_interrupted(self, worker, spec):
        calls.append(spec)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)  # as the notebook's stop button does
        return original(self, worker, spec)

    monkeypatch.setattr(Runner, "_run_one", second_case_interrupted)
    suite = tmp_path / "one.toml"
    suite.write_text(SUITE)
    store = tmp_path / "s.sqlite"
    run = gpubench.run(suite, quick=True, store=store)
    assert run.status == "interrupted"
    assert [r["status"] for r in records(store)] == ["ok"]  # the first case, finished and kept
    assert "interrupted" in run._repr_html_()


def test_importing_gpubench_imports_no_framework_nor_numpy():
    code = ("import sys, gpubench; gpubench.run; gpubench.Run; "
            "print([m for m in ('numpy', 'torch', 'pandas', 'plotly', 'tqdm', 'gpubench.store', 'gpubench.runner') "
            "if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

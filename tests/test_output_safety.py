"""Text and files that leave gpubench (issue 22 items 6 to 10).

* CSV cells that a spreadsheet would run as formulas are neutralised; numbers stay numbers (6).
* Control characters from suite names and imported test names are shown, not sent to the terminal (7).
* An export that meets a full disk leaves nothing behind; every file written respects the umask (8, 9).
* A terminal whose encoding is ASCII gets ASCII renderings, never ``UnicodeEncodeError`` (10).
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import resource
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_gpubench

from gpubench.records import CaseResult, CaseSpec
from gpubench.store import ResultStore

ESC_TITLE = "\x1b]0;pwned\x07"
CLEAR = "\x1b[2J\x1b[H"
FORGED = "\rok        matmul forged line"


def hostile_store(path: Path, suite: str = f"suite{ESC_TITLE}", runs: int = 2) -> None:
    """Runs whose suite, test names, device name and errors carry formulas and terminal control sequences."""
    names = [f"t.py::test_{CLEAR}x", "=HYPERLINK(\"http://evil\",\"click\")", "+cmd|' /C calc'!A0",
             f"t.py::test{FORGED}", "@SUM(1+1)*cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0"]
    with ResultStore(path) as store:
        for _ in range(runs):
            run_id = store.begin_run(suite, baseline="numpy", label=f"lbl{CLEAR}",
                                     environment={"cpu": {"model": f"CPU{ESC_TITLE}"}, "hostname": "=h"})
            for i, name in enumerate(names):
                spec = CaseSpec.make(name, "pytest", "cpu", "float64", {"p": "=1+1"}, suite=suite)
                store.add_result(run_id, CaseResult(spec, "ok", samples=(1e-3 + i * 1e-5, 1.1e-3, 1.2e-3),
                                                    device_name="\t=cmd", spec_hash="h"))
            spec = CaseSpec.make("matmul", "numpy", "cpu", "float32", {"m": 8, "n": 8, "k": 8}, suite=suite)
            store.add_result(run_id, CaseResult(spec, "skipped", error=f"-1+cmd{FORGED}"))
            store.finish_run(run_id, "complete")


# --- 6: CSV formula injection -------------------------------------------------------------------------------


def test_csv_export_neutralises_formulas_and_keeps_numbers(tmp_path, cli, store_path):
    hostile_store(store_path)
    code, out, err = cli("export", "--format", "csv")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 7
    for row in rows:
        for column, cell in row.items():
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r", "\n")), (column, cell)
    workloads = {r["workload"] for r in rows}
    assert "'=HYPERLINK(\"http://evil\",\"click\")" in workloads and "'+cmd|' /C calc'!A0" in workloads
    assert "'@SUM(1+1)*cmd|' /C calc'!A0" in workloads and "'-2+3+cmd|' /C calc'!A0" in workloads
    assert {r["device_name"] for r in rows if r["status"] == "ok"} == {"'\t=cmd"}
    assert any(r["error"].startswith("'-1+cmd") for r in rows)
    ok = [r for r in rows if r["status"] == "ok"]
    assert all(float(r["median_s"]) > 0 and int(r["n_samples"]) == 3 for r in ok)  # numbers stay numeric
    assert json.loads(ok[0]["params"]) == {"p": "=1+1"}  # a JSON cell starts with { and is left as it is


def test_csv_cell_rule():
    from gpubench.textout import csv_cell

    assert csv_cell("=1+2") == "'=1+2" and csv_cell("\r=1") == "'\r=1" and csv_cell("\uff1d1") == "'\uff1d1"
    assert csv_cell("matmul") == "matmul" and csv_cell("") == ""
    assert csv_cell(-1.5) == -1.5 and csv_cell(-3) == -3 and csv_cell(True) is True


# --- 7: terminal escapes -------------------------------------------------------------------------------------


def no_controls(text: str) -> None:
    bad = sorted({hex(ord(c)) for c in text if (ord(c) < 32 and c != "\n") or 0x7f <= ord(c) < 0xa0})
    assert not bad, f"control characters {bad} reached the terminal"


def test_runs_show_compare_render_control_characters_visibly(tmp_path, cli, store_path):
    hostile_store(store_path)
    for args in (["runs"], ["show"], ["compare", "1", "2"], ["history", "-o", str(tmp_path / "h.html")]):
        code, out, err = cli(*args)
        assert code == 0, (args, err)
        no_controls(out + err)
    _, out, _ = cli("show")
    assert "suite\\x1b]0;pwned\\x07" in out and "t.py::test_\\x1b[2J\\x1b[Hx" in out
    assert "t.py::test\\rok        matmul forged line" in out
    assert "-1+cmd\\rok" in out  # the skip line's reason
    _, out, _ = cli("compare", "1", "2")
    assert "suite\\x1b]0;pwned\\x07" in out and "test_\\x1b[2J" in out


def test_columns_stay_aligned_around_escapes(cli, store_path):
    hostile_store(store_path, runs=1)
    _, out, _ = cli("show")
    table = [ln for ln in out.splitlines() if "pytest" in ln]
    starts = {ln.index(" pytest ") for ln in table}
    assert len(table) == 6 and len(starts) == 1


def test_errors_are_one_visible_line(tmp_path, cli):
    code, out, err = cli("show", "--store", str(tmp_path / f"no{ESC_TITLE}\nstore.sqlite"))
    assert code == 2 and err.count("\n") == 1 and "no\\x1b]0;pwned\\x07\\nstore" in err
    no_controls(err)


def test_visible():
    from gpubench.textout import visible

    assert visible("a\x1b[31mb\x07\r\n\t\x00\x7f\x9b") == "a\\x1b[31mb\\x07\\r\\n\\t\\x00\\x7f\\x9b"
    assert visible("line\nnext\x1b", newlines=True) == "line\nnext\\x1b"
    assert visible("abc\u202edcba\u200b") == "abc\\u202edcba\\u200b"  # bidi override, zero-width space
    assert visible("µs 4096³ ×") == "µs 4096³ ×" and visible(None) == "" and visible(3) == "3"


def test_terminal_stream_keeps_only_the_progress_lines_carriage_return():
    from gpubench.textout import TerminalStream

    class Tty(io.StringIO):
        def isatty(self):
            return True

    for raw, kept in ((Tty(), "\r[####] 1/2 matmul"), (io.StringIO(), "\\r[####] 1/2 matmul")):
        stream = TerminalStream(raw)
        stream.write("\r[####] 1/2 matmul")
        print(f"suite {ESC_TITLE}{FORGED}", file=stream)
        assert raw.getvalue() == kept + "suite \\x1b]0;pwned\\x07\\rok        matmul forged line\n"


# --- 8, 9: files -----------------------------------------------------------------------------------------------


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def _limit_file_size(limit: int):
    def preexec():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, not a signal
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return preexec


@pytest.mark.parametrize("existing", [False, True])
def test_export_on_a_full_disk_leaves_nothing_behind(tmp_path, store_path, existing):
    from synthetic_results import make_store

    make_store(store_path, n_results=200).close()  # an export of some 400 kB; the store itself needs 32 kB
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    target = out_dir / "r.json"
    if existing:
        target.write_text("previous export\n")
    for attempt in range(3):
        proc = subprocess.run([sys.executable, "-m", "gpubench", "export", "-o", str(target)], capture_output=True,
                              text=True, timeout=120, preexec_fn=_limit_file_size(128 << 10))
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr.startswith(f"gpubench: error: cannot write {target}: File too large"), proc.stderr
        assert proc.stderr.count("\n") == 1
        assert leftovers(out_dir) == [], attempt
    assert (target.read_text() == "previous export\n") if existing else not target.exists()


def test_a_failed_write_removes_its_temporary_file(tmp_path, monkeypatch):
    from gpubench import atomicfile

    real_fdopen = os.fdopen

    class FullDisk(io.RawIOBase):
        def __init__(self, fd):
            self.f = real_fdopen(fd, "wb")

        def write(self, data):
            self.f.write(data[: len(data) // 2])
            self.f.flush()
            raise OSError(errno.ENOSPC, "No space left on device")

        def fileno(self):
            return self.f.fileno()

        def close(self):
            self.f.close()

    monkeypatch.setattr(atomicfile.os, "fdopen", lambda fd, mode: FullDisk(fd))
    with pytest.raises(atomicfile.OutputError, match=r"cannot write .*r\.html: No space left on device"):
        atomicfile.write_text(tmp_path / "r.html", "x" * 100_000)
    assert list(tmp_path.iterdir()) == []


def test_export_to_a_full_stream_is_one_line(store_path):
    hostile_store(store_path)
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "gpubench", "export"], stdout=full, stderr=subprocess.PIPE,
                              text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr == "gpubench: error: cannot write the output: No space left on device\n"


@pytest.fixture
def umask():
    def set_umask(mask: int) -> None:
        os.umask(mask)

    old = os.umask(0o022)
    os.umask(old)
    yield set_umask
    os.umask(old)


@pytest.mark.parametrize(("mask", "mode"), [(0o077, 0o600), (0o022, 0o644), (0o002, 0o664)])
def test_every_file_written_respects_the_umask(tmp_path, cli, store_path, umask, mask, mode):
    hostile_store(store_path)
    umask(mask)
    outputs = {"export": tmp_path / "e.json", "report": tmp_path / "r.html", "history": tmp_path / "h.html",
               "compare": tmp_path / "c.html"}
    for args in (["export", "-o", str(outputs["export"])], ["report", "-o", str(outputs["report"])],
                 ["history", "-o", str(outputs["history"])], ["compare", "1", "2", "--html", str(outputs["compare"])]):
        code, _, err = cli(*args)
        assert code == 0, (args, err)
    assert {k: oct(stat.S_IMODE(p.stat().st_mode)) for k, p in outputs.items()} == {k: oct(mode) for k in outputs}


def test_an_existing_file_keeps_its_mode(tmp_path, cli, store_path, umask):
    hostile_store(store_path)
    umask(0o022)
    target = tmp_path / "r.html"
    target.write_text("old")
    target.chmod(0o640)
    code, _, err = cli("report", "-o", str(target))
    assert code == 0, err
    assert stat.S_IMODE(target.stat().st_mode) == 0o640 and target.read_text() != "old"


# --- 10: ASCII terminals -----------------------------------------------------------------------------------


ASCII = {"LC_ALL": "C", "PYTHONIOENCODING": "ascii"}


def test_ascii_terminals_get_ascii(tmp_path, store_path):
    from synthetic_results import make_store

    make_store(store_path, n_results=40, runs=2).close()  # run 1 is a calibration; 2 and 3 share their cases
    for args in (["show"], ["compare", "2", "3"], ["list", "suites"], ["runs"], ["run", "--help"]):
        proc = run_gpubench(*args, env=ASCII)
        assert proc.returncode in (0, 1), (args, proc.stderr)  # compare exits 1 on a regression
        assert "UnicodeEncodeError" not in proc.stderr and proc.stdout, (args, proc.stderr)
        proc.stdout.encode("ascii")
    shown = run_gpubench("show", env=ASCII).stdout
    assert "^3" in shown and "us" in shown or " ms" in shown


def test_ascii_run_prints_its_table(tmp_path, store_path):
    proc = run_gpubench("run", "--suite", "saxpy", "--quick", "--backend", "numpy", "--dtype", "float32",
                        env=ASCII)
    assert proc.returncode == 0, proc.stderr
    assert "saxpy" in proc.stdout and "x" in proc.stdout and "ok" in proc.stdout


def test_for_encoding():
    from gpubench.textout import for_encoding

    assert for_encoding("4096³ 12 µs 1.0× ±2% a–b …", "ascii") == "4096^3 12 us 1.0x +/-2% a-b ..."
    assert for_encoding("µs ×", "latin-1") == "µs ×"  # latin-1 carries both
    assert for_encoding("a → b 日", "ascii") == "a -> b \\u65e5"
    assert for_encoding("µs", "utf-8") == "µs"


def test_data_formats_are_written_unchanged_under_ascii(tmp_path, store_path):
    from synthetic_results import make_store

    make_store(store_path, n_results=10).close()
    proc = subprocess.run([sys.executable, "-m", "gpubench", "export", "--format", "csv"], capture_output=True,
                          env={**os.environ, **ASCII}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "³".encode() in proc.stdout  # UTF-8, as the format says, not an escaped rendering

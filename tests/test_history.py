"""``gpubench history``: histories across runs, change-point detection, git facts, and the page."""

from __future__ import annotations

import json
import math
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from history_store import commit, history_store  # noqa: E402
from synthetic_results import environment, samples  # noqa: E402

from gpubench.envinfo import capture_host, git_facts  # noqa: E402
from gpubench.history import collect, detect, outliers, run_noise  # noqa: E402
from gpubench.records import CaseResult, CaseSpec  # noqa: E402
from gpubench.store import ResultStore  # noqa: E402


def noisy_series(levels: list[float], rng: random.Random, noise: float = 0.02) -> list[float]:
    return [math.log(level * (1 + rng.gauss(0, noise))) for level in levels]


def cuts(segs) -> list[int]:
    return [a for a, _, _ in segs[1:]]


# --- detection ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_pure_noise_has_no_change(seed):
    values = noisy_series([1.0] * 40, random.Random(seed), noise=0.03)
    assert cuts(detect(values, [0.01] * 40)) == []


@pytest.mark.parametrize("seed", range(6))
def test_a_step_is_found_where_it_happened(seed):
    values = noisy_series([1.0] * 15 + [1.25] * 15, random.Random(seed))
    segs = detect(values, [0.01] * 30)
    assert cuts(segs) == [15]
    assert math.exp(segs[1][2]) / math.exp(segs[0][2]) == pytest.approx(1.25, rel=0.03)


def test_two_steps_and_a_small_one_below_the_threshold():
    rng = random.Random(3)
    values = noisy_series([1.0] * 8 + [0.8] * 8 + [1.1] * 8, rng, noise=0.01)
    assert cuts(detect(values, [0.005] * 24)) == [8, 16]
    small = noisy_series([1.0] * 10 + [1.03] * 10, rng, noise=0.002)
    assert cuts(detect(small, [0.001] * 20, min_change=0.05)) == []  # real, but under 5 %
    assert cuts(detect(small, [0.001] * 20, min_change=0.01)) == [10]


def test_one_odd_run_is_an_outlier_not_a_change():
    values = noisy_series([1.0] * 10 + [1.6] + [1.0] * 10, random.Random(1))
    noise = run_noise(values)
    odd = outliers(values, [math.hypot(noise, 0.005)] * len(values))
    assert [i for i, o in enumerate(odd) if o] == [10]
    assert cuts(detect(values, [0.01] * 21, skip=odd)) == []


def test_a_change_in_the_newest_run_stands_alone():
    values = noisy_series([1.0] * 12 + [1.4], random.Random(2))
    assert cuts(detect(values, [0.01] * 13)) == [12]


def test_noisy_runs_with_wide_intervals_do_not_make_steps():
    # The same 10 % wobble, but each run says it is only known to ±15 %: no step.
    rng = random.Random(4)
    values = noisy_series([1.0] * 6 + [1.1] * 6, rng, noise=0.01)
    assert cuts(detect(values, [0.003] * 12)) == [6]
    assert cuts(detect(values, [0.15] * 12)) == []


# --- histories from a store ------------------------------------------------------------------------


def test_collect_finds_the_step_and_its_commit_range(tmp_path):
    with history_store(tmp_path / "s.sqlite", n_runs=12, step_at=7) as store:
        histories = collect(store)
    assert len(histories) == 4 and all(len(h.points) == 12 for h in histories)
    changed = [h for h in histories if h.changes]
    assert [h.title for h in changed] == ["matmul torch:cpu float32 k=512 m=512 n=512"]
    [change] = changed[0].changes
    assert change.kind == "step" and change.index == 7
    assert change.change_pct == pytest.approx(30, abs=4)
    assert change.before.commit == commit(6) and change.after.commit == commit(7)
    assert f"git log {commit(6)[:10]}..{commit(7)[:10]}" in change.commit_range()
    # Points are labelled by commit, a dirty tree marked with +.
    labels = [p.label for p in histories[0].points]
    assert labels[0] == commit(0)[:7] and labels[3] == commit(3)[:7] + "+"


def test_collect_filters_by_suite_and_case_words(tmp_path):
    with history_store(tmp_path / "s.sqlite", n_runs=4) as store:
        assert [h.title for h in collect(store, case_filter="TORCH 512")] == [
            "matmul torch:cpu float32 k=512 m=512 n=512"]
        assert collect(store, suite="saxpy") == []


def test_machines_are_never_mixed_and_a_changed_benchmark_is_marked(tmp_path):
    rng = random.Random(0)
    with ResultStore(tmp_path / "s.sqlite") as store:
        for i, (host, spec_hash) in enumerate([("a", "h1"), ("b", "h1"), ("a", "h1"), ("b", "h1"), ("a", "h1"),
                                               ("a", "h2"), ("a", "h2"), ("a", "h2")]):
            run = store.begin_run("matmul", environment=environment(host, gpu=False),
                                  started_at=f"2026-02-{i + 1:02d}T00:00:00+00:00")
            spec = CaseSpec.make("matmul", "numpy", "cpu", "float32", {"m": 64, "n": 64, "k": 64})
            store.add_result(run, CaseResult(spec, "ok", samples=samples(1e-3 if host == "a" else 3e-3, 7, rng),
                                             spec_hash=spec_hash))
        histories = collect(store)
    by_machine = {h.machine: h for h in histories}
    assert set(by_machine) == {"a", "b"} and len(by_machine["a"].points) == 6 and len(by_machine["b"].points) == 2
    assert [c.kind for c in by_machine["a"].changes] == ["benchmark changed"]
    assert by_machine["a"].changes[0].index == 3


# --- the command and its page ---------------------------------------------------------------------


def test_cli_history_writes_one_self_contained_page(cli, tmp_path):
    store = tmp_path / "s.sqlite"
    history_store(store, n_runs=10, step_at=6).close()
    out = tmp_path / "h.html"
    code, stdout, err = cli("history", "--store", str(store), "-o", str(out))
    assert code == 0, err
    assert "4 cases across 10 runs; 1 change(s)" in stdout
    assert re.search(r"torch:cpu float32 k=512 m=512 n=512: \+\d+\.\d % \(slower\) between", stdout)
    text = out.read_text()
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", text, re.I)
    assert text.count("var Plotly=(") == 1 and "connect-src &#x27;none&#x27;" in text
    data = json.loads(re.search(r'<script type="application/json" id="gpubench-data">(.*?)</script>',
                                text, re.S).group(1))
    assert len(data["figures"]) == 4
    first = data["figures"][0]  # the case with a change comes first, with its line
    assert "torch:cpu" in first["layout"]["title"]["text"] and len(first["layout"]["shapes"]) == 1
    assert any(commit(4)[:7] in t for t in first["layout"]["xaxis"]["ticktext"])
    code, stdout, _ = cli("history", "--store", str(store), "-o", str(out), "--case", "numpy")
    assert code == 0 and "2 cases across 10 runs; 0 change(s)" in stdout


@pytest.mark.parametrize("args, message", [
    (["--suite", "saxpy"], "no run of suite 'saxpy'"),
    (["--case", "nothing-matches"], "no correct result matching 'nothing-matches'"),
    (["--min-change", "0"], "--min-change must be a positive"),
])
def test_cli_history_bad_input(cli, tmp_path, args, message):
    store = tmp_path / "s.sqlite"
    history_store(store, n_runs=3).close()
    code, _, err = cli("history", "--store", str(store), "-o", str(tmp_path / "h.html"), *args)
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "h.html").exists()


def test_cli_history_without_a_store(cli, tmp_path):
    code, _, err = cli("history", "--store", str(tmp_path / "none.sqlite"))
    assert code == 2 and "no results store" in err


# --- git facts in the run environment --------------------------------------------------------------


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True, check=True,
                          env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                               "GIT_COMMITTER_EMAIL": "t@t", "HOME": str(cwd), "PATH": "/usr/bin:/bin"}).stdout


@pytest.mark.skipif(subprocess.run(["which", "git"], capture_output=True).returncode != 0, reason="git not installed")
def test_git_facts_of_a_work_tree(tmp_path):
    repo = tmp_path / "proj"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "trunk")
    (repo / "a.txt").write_text("1")
    _git(repo, "add", "a.txt")
    _git(repo, "commit", "-q", "-m", "one")
    head = _git(repo, "rev-parse", "HEAD").strip()
    facts = git_facts(repo)
    assert facts["commit"] == head and facts["branch"] == "trunk" and facts["dirty"] is False
    (repo / "a.txt").write_text("2")
    assert git_facts(repo)["dirty"] is True
    (repo / "a.txt").write_text("1")
    (repo / "untracked.txt").write_text("x")
    assert git_facts(repo)["dirty"] is False  # untracked files do not make a tree dirty
    assert git_facts(tmp_path) is None  # not a work tree


def test_run_environment_records_code_versions_and_load(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # not a git work tree
    env = capture_host()
    assert env["git"]["project"] is None
    assert env["git"]["gpubench"]["version"]
    repo_root = Path(__file__).resolve().parents[1]
    if (repo_root / ".git").exists():  # gpubench runs from this checkout
        assert len(env["git"]["gpubench"]["commit"]) == 40
    assert env["load_avg"] is None or len(env["load_avg"]) == 3

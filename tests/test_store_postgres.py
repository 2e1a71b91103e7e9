"""Every command against a PostgreSQL store on a real server: ``run``, ``import``, ``runs``, ``show``,
``export``, ``report``, ``compare``, ``history``, the pytest plug-in's ``--gpubench-store``,
``gpubench.load``; machines kept apart in one shared store; the password in none of the output,
stored records or reports."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from conftest import REPO
from history_store import history_store
from pg_cluster import PASSWORD, PASSWORD_USER
from test_store_damaged import BENCH_JSON

from gpubench.store import open_store

SUITE = """
name = "tiny"
baseline = "numpy"
[[cases]]
workload = "saxpy"
backends = ["numpy"]
dtypes = ["float32"]
params = { n = [1000, 2000] }
"""


@pytest.fixture(scope="module")
def team(postgres_cluster, tmp_path_factory):
    """A store on the server that only a password opens, filled through the command line: two runs of a
    tiny suite, an imported pytest-benchmark file and a pytest session with the plug-in."""
    url = postgres_cluster.new_store_url(user=PASSWORD_USER, password=PASSWORD)
    work = tmp_path_factory.mktemp("team")
    (work / "tiny.toml").write_text(SUITE)
    (work / "bench.json").write_text(json.dumps(BENCH_JSON))
    outputs = []

    def gpubench(*args: str, ok=(0,)) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "gpubench", *args], capture_output=True, text=True, cwd=work,
                              timeout=600)
        assert proc.returncode in ok, (args, proc.stderr)
        outputs.append(proc.stdout + proc.stderr)
        return proc

    for label in ("first", "second"):
        gpubench("run", "--suite", "tiny.toml", "--budget", "0.01", "--label", label, "--store", url)
    gpubench("import", "bench.json", "--label", "imported", "--store", url)
    (work / "test_plugin_case.py").write_text(textwrap.dedent("""
        def test_numpy_matmul(gpubench_case, benchmark):
            gpubench_case("matmul", "numpy", params={"size": 32}).run(benchmark)
    """))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--gpubench-quick",
                           "--benchmark-min-rounds=3", "--benchmark-max-time=0.02", f"--gpubench-store={url}",
                           "--gpubench-label=plugin", "test_plugin_case.py"],
                          capture_output=True, text=True, cwd=work, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    outputs.append(proc.stdout + proc.stderr)
    return {"url": url, "work": work, "gpubench": gpubench, "outputs": outputs, "cluster": postgres_cluster}


def test_every_command_works_against_postgresql(team):
    url, work, gpubench = team["url"], team["work"], team["gpubench"]
    runs = json.loads(gpubench("runs", "--json", "--store", url).stdout)
    assert [(r["label"], r["status"]) for r in runs] == [("first", "complete"), ("second", "complete"),
                                                         ("imported", "complete"), ("plugin", "complete")]
    assert [sum(r["results"].values()) for r in runs] == [2, 2, 1, 1]
    assert "saxpy" in gpubench("show", "1", "--store", url).stdout
    exported = json.loads(gpubench("export", "--run", "all", "--store", url).stdout)
    assert len(exported["results"]) == 6
    assert gpubench("export", "--format", "csv", "--run", "2", "--store", url).stdout.count("\n") == 3
    gpubench("report", "1", "2", "-o", str(work / "report.html"), "--store", url)
    assert (work / "report.html").stat().st_size > 10_000
    cmp = gpubench("compare", "1", "2", "--store", url, ok=(0, 1))
    assert "saxpy" in cmp.stdout
    gpubench("compare", "--against-last", "3", "2", "--store", url, ok=(0, 1))
    gpubench("history", "--suite", "tiny", "-o", str(work / "history.html"), "--store", url)
    assert (work / "history.html").stat().st_size > 10_000

    import gpubench as api

    frame = api.load(url)
    assert len(frame) == 6 and set(frame["label"]) == {"first", "second", "imported", "plugin"}
    assert len(api.load(url, run="latest")) == 1


def test_the_password_is_in_no_output_record_or_report(team):
    url, work = team["url"], team["work"]
    assert PASSWORD in url
    team["gpubench"]("runs", "--store", url)
    for text in team["outputs"]:
        assert PASSWORD not in text
        assert "***" in text or "postgresql" not in text
    for page in work.glob("*.html"):
        assert PASSWORD not in page.read_text()
    import psycopg

    with psycopg.connect(url) as conn:
        for table in ("runs", "results", "ceilings"):
            for row in conn.execute(f"SELECT * FROM {table}"):
                assert PASSWORD not in repr(row), table
        commands = [r[0] for r in conn.execute("SELECT command FROM runs ORDER BY id")]
    assert all("postgresql://gpubench_pw:***@" in c for c in commands), commands


def test_machines_share_one_store_and_stay_apart(postgres_url, tmp_path):
    history_store(postgres_url, n_runs=6, step_at=3, hostname="gpu-runner-a").close()
    history_store(postgres_url, n_runs=6, step_at=99, hostname="gpu-runner-b", seed=1).close()
    with open_store(postgres_url, readonly=True) as store:
        hosts = [r.environment["hostname"] for r in store.runs()]
        assert hosts == ["gpu-runner-a"] * 6 + ["gpu-runner-b"] * 6
    out = tmp_path / "history.html"
    proc = subprocess.run([sys.executable, "-m", "gpubench", "history", "--store", postgres_url, "-o", str(out)],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("8 cases across 12 runs")  # 4 cases per machine, each machine its own series
    page = out.read_text()
    assert "gpu-runner-a" in page and "gpu-runner-b" in page
    changes = [line for line in proc.stdout.splitlines()[1:] if "torch" in line]
    assert len(changes) == 1  # the step of machine a only
    # compare --against-last takes the history of the new run's machine only
    proc = subprocess.run([sys.executable, "-m", "gpubench", "compare", "--against-last", "2", "12", "--store",
                           postgres_url], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0 and "runs 10, 11" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_a_store_that_cannot_be_reached_is_one_line(cli):
    code, out, err = cli("runs", "--store", f"postgresql://nobody:{PASSWORD}@/nothing?host=/nonexistent-dir")
    assert code == 1 and err.count("\n") == 1 and err.startswith("gpubench: error: cannot open store")
    assert PASSWORD not in err


def test_a_store_another_machine_creates_while_this_one_looks_is_opened(postgres_url, monkeypatch):
    """Two runners start on a fresh database at once. The other one commits the new store between this one's
    first and second look at the catalog: this one must open that store, not call it somebody else's tables."""
    from gpubench.store.postgres import PostgresStore

    real = PostgresStore._scalar
    looked: list[str] = []

    def scalar(self, sql, params=()):
        out = real(self, sql, params)
        if not looked and "to_regclass" in sql:
            looked.append(sql)
            with monkeypatch.context() as m:  # the other machine, in between
                m.setattr(PostgresStore, "_scalar", real)
                other = open_store(postgres_url)
                other.finish_run(other.begin_run("other machine"))
                other.close()
        return out

    monkeypatch.setattr(PostgresStore, "_scalar", scalar)
    with open_store(postgres_url) as store:
        assert looked and [r.suite for r in store.runs()] == ["other machine"]

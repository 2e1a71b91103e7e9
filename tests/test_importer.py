"""``gpubench import``: real pytest-benchmark JSON in, a stored run out; bad files rejected, store untouched."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import textwrap

import pytest

from gpubench.store import ResultStore

BENCH_FILE = '''
import numpy as np


def test_numpy_sort(benchmark):
    x = np.random.default_rng(0).random(2000)
    benchmark.extra_info["note"] = "plain pytest-benchmark"
    benchmark(np.sort, x)


def test_gpubench_matmul(gpubench_case, benchmark):
    gpubench_case("matmul", "numpy", params={"size": 48}).run(benchmark)


def test_gpubench_skipped(gpubench_case, benchmark):
    gpubench_case("matmul", "numpy", dtype="bfloat16", params={"size": 48}).run(benchmark)
'''


@pytest.fixture(scope="module")
def bench_json(tmp_path_factory) -> dict:
    """A real ``--benchmark-json`` file from pytest-benchmark, run in a subprocess (once per module)."""
    d = tmp_path_factory.mktemp("bench")
    (d / "test_tiny_bench.py").write_text(textwrap.dedent(BENCH_FILE))
    out = d / "bench.json"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--gpubench-quick",
                           "--benchmark-min-rounds=5", "--benchmark-max-time=0.05",
                           f"--benchmark-json={out}", "test_tiny_bench.py"],
                          cwd=d, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return json.loads(out.read_text())


def write(tmp_path, doc, name="b.json"):
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return str(path)


def test_import_real_file(bench_json, tmp_path, cli, store_path):
    code, out, err = cli("import", write(tmp_path, bench_json), "--label", "ci")
    assert code == 0, err
    assert out.strip() == "1" and "imported 3 case(s)" in err
    with ResultStore(store_path) as store:
        run = store.run("latest")
        results = {r.spec.workload if r.spec.backend == "pytest" else r.spec.backend + r.spec.dtype: r
                   for r in store.results(run.id)}
    assert (run.suite, run.label, run.status, run.baseline) == ("pytest-benchmark", "ci", "complete", "numpy")
    # Machine and commit info are kept; gpubench's own host facts come from the plugin.
    assert run.environment["source"] == "pytest-benchmark"
    assert run.environment["cpu"]["model"]
    assert run.environment["pytest_benchmark"]["machine_info"]["python_version"]
    assert "id" in run.environment["commit"]
    benches = {b["name"]: b for b in bench_json["benchmarks"]}

    foreign = results["test_tiny_bench.py::test_numpy_sort"]
    raw = benches["test_numpy_sort"]["stats"]
    assert (foreign.spec.backend, foreign.spec.device, foreign.status) == ("pytest", "cpu", "ok")
    assert list(foreign.samples) == raw["data"] and foreign.number == raw["iterations"]
    assert foreign.median_s == pytest.approx(raw["median"])
    assert foreign.metrics["pytest_benchmark"]["extra_info"] == {"note": "plain pytest-benchmark"}

    case = results["numpyfloat32"]
    raw = benches["test_gpubench_matmul"]
    assert case.spec.workload == "matmul" and case.spec.param_dict == {"m": 48, "n": 48, "k": 48}
    assert case.flops == 2 * 48**3 and case.rel_error <= case.tolerance
    assert case.spec_hash == raw["extra_info"]["gpubench"]["spec_hash"]
    assert list(case.samples) == raw["stats"]["data"]

    skipped = results["numpybfloat16"]
    assert skipped.status == "skipped" and "bfloat16" in skipped.error


def test_foreign_only_file_without_gpubench_sections(bench_json, tmp_path, cli, store_path):
    doc = copy.deepcopy(bench_json)
    doc.pop("gpubench")
    doc["machine_info"].pop("gpubench")
    doc["benchmarks"] = [b for b in doc["benchmarks"] if "gpubench" not in b["extra_info"]]
    code, out, err = cli("import", write(tmp_path, doc))
    assert code == 0, err
    with ResultStore(store_path) as store:
        run = store.run("latest")
        [r] = store.results(run.id)
    # Without gpubench's host facts, the CPU model comes from pytest-benchmark's cpuinfo.
    cpu = doc["machine_info"]["cpu"]
    assert run.environment["cpu"]["model"] == (cpu.get("brand_raw") or doc["machine_info"]["processor"]
                                               or doc["machine_info"]["machine"])
    assert "gpubench" not in run.environment["pytest_benchmark"]["machine_info"]
    assert r.spec.backend == "pytest"


def _strip_data(doc):
    for b in doc["benchmarks"]:
        b["stats"].pop("data")


def _negative_sample(doc):
    doc["benchmarks"][0]["stats"]["data"][0] = -1.0


def _bad_spec(doc):
    for b in doc["benchmarks"]:
        if "gpubench" in b["extra_info"]:
            b["extra_info"]["gpubench"]["spec"]["dtype"] = "float7"


def _bad_untimed(doc):
    doc["gpubench"]["untimed"][0]["status"] = "fine"


def _no_benchmarks(doc):
    doc["benchmarks"] = []
    doc.pop("gpubench")


@pytest.mark.parametrize(("mutate", "message"), [
    (_strip_data, "has no raw timings (stats.data)"),
    (_negative_sample, "not a positive finite time"),
    (_bad_spec, "bad record: unknown dtype 'float7'"),
    (_bad_untimed, "gpubench.untimed[0]: bad record: unknown status 'fine'"),
    (_no_benchmarks, "holds no benchmarks"),
])
def test_bad_content_rejected_and_nothing_written(bench_json, tmp_path, cli, store_path, mutate, message):
    cli("import", write(tmp_path, bench_json, "good.json"))
    with ResultStore(store_path) as store:
        before = (len(store.runs()), store.count_results())
    doc = copy.deepcopy(bench_json)
    mutate(doc)
    code, out, err = cli("import", write(tmp_path, doc))
    assert code == 2 and out == ""
    assert err.startswith("gpubench: error: b.json: ") and message in err and err.count("\n") == 1
    with ResultStore(store_path) as store:
        assert (len(store.runs()), store.count_results()) == before


@pytest.mark.parametrize(("content", "message"), [
    ("not json {", "not valid JSON"),
    ("[1, 2]", "not a pytest-benchmark JSON file"),
    ('{"benchmarks": []}', "not a pytest-benchmark JSON file"),
    (b"\xff\xfe\x00binary", "not a text file"),
])
def test_bad_files_rejected_without_creating_a_store(tmp_path, cli, content, message):
    path = tmp_path / "b.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    store = tmp_path / "never.sqlite"
    code, out, err = cli("import", str(path), "--store", str(store))
    assert code == 2 and message in err and err.count("\n") == 1
    assert not store.exists()


def test_missing_file_and_unknown_baseline(tmp_path, cli, bench_json):
    store = tmp_path / "never.sqlite"
    code, _, err = cli("import", str(tmp_path / "nope.json"), "--store", str(store))
    assert code == 2 and "no such file" in err
    code, _, err = cli("import", str(tmp_path), "--store", str(store))
    assert code == 2 and "is a directory" in err
    code, _, err = cli("import", write(tmp_path, bench_json), "--store", str(store), "--baseline", "nosuch")
    assert code == 2 and "unknown baseline backend 'nosuch'" in err
    assert not store.exists()

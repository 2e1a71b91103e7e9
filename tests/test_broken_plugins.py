"""Broken, hanging and noisy plug-ins: listed as unavailable with their reason, never taking the CLI down.

Each plug-in is a real package made here and found through the ``gpubench.backends`` entry
point, as a user's would be (issue 11, defects 1 and 2).
"""

from __future__ import annotations

import json
import time

import pytest
from conftest import install_plugin, run_gpubench

from gpubench.errors import BrokenBackend

OPS = '''
import numpy as np

from gpubench.backends.base import BoundOp

VARIANTS = ("default",)


def build(backend, spec, params, inputs, device):
    a, b = inputs["a"], inputs["b"]
    return BoundOp(call=lambda: None, result=lambda: a @ b)
'''

CPU = '''
from gpubench.backends.base import Backend, DeviceInfo


class Cpu(Backend):
    device_kinds = ("cpu",)
    ops_package = "gpubench_hostile.ops"

    def devices(self):
        return [DeviceInfo("cpu", "hostile cpu", "cpu")]
'''

FILES = {
    "gpubench_hostile/__init__.py": "",
    "gpubench_hostile/ops/__init__.py": "",
    "gpubench_hostile/ops/matmul.py": OPS,
    "gpubench_hostile/cpu.py": CPU,
    "gpubench_hostile/importfail.py": "import gpubench_no_such_dependency  # noqa\n",
    "gpubench_hostile/exitfail.py": "raise SystemExit(3)\n",
    "gpubench_hostile/ctorfail.py": '''
from gpubench_hostile.cpu import Cpu


class CtorFail(Cpu):
    def __init__(self):
        raise RuntimeError("constructor exploded")
''',
    "gpubench_hostile/loadfail.py": '''
from gpubench_hostile.cpu import Cpu


class LoadFail(Cpu):
    def load(self):
        raise RuntimeError("driver table corrupt")
''',
    "gpubench_hostile/loadhang.py": '''
import time

from gpubench_hostile.cpu import Cpu


class LoadHang(Cpu):
    def load(self):
        time.sleep(3600)
''',
    "gpubench_hostile/banner.py": '''
from gpubench_hostile.cpu import Cpu

print("*** HOSTILE BANNER at import ***")


class Banner(Cpu):
    def load(self):
        print("*** HOSTILE BANNER in load ***")

    def environment(self):
        print("*** HOSTILE BANNER in environment ***")
        return {"banner": "printed"}
''',
}

BACKENDS = {
    "importfail": "gpubench_hostile.importfail:Nothing",
    "exitfail": "gpubench_hostile.exitfail:Nothing",
    "ctorfail": "gpubench_hostile.ctorfail:CtorFail",
    "loadfail": "gpubench_hostile.loadfail:LoadFail",
    "loadhang": "gpubench_hostile.loadhang:LoadHang",
    "banner": "gpubench_hostile.banner:Banner",
}

SUITE = '''
name = "tiny"
baseline = "numpy"
[[cases]]
workload = "matmul"
backends = {backends}
dtypes = ["float64"]
params = {{ size = [16, 32] }}
'''


@pytest.fixture
def hostile(tmp_path, monkeypatch, store_path):
    """Every hostile plug-in installed, probes limited to 5 s."""
    monkeypatch.setenv("GPUBENCH_PROBE_TIMEOUT", "5")
    return install_plugin(monkeypatch, tmp_path / "plugins", BACKENDS, FILES, dist="gpubench_hostile")


def suite(tmp_path, backends):
    path = tmp_path / "tiny.toml"
    path.write_text(SUITE.format(backends=json.dumps(backends)))
    return str(path)


def one_error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.startswith("gpubench: error:")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def test_get_backend_names_the_broken_plugin(hostile):
    from gpubench.backends import backend_names, get_backend

    assert {"ctorfail", "importfail", "exitfail"} <= set(backend_names())  # listing loads nothing
    for name, words in (("ctorfail", "RuntimeError: constructor exploded"),
                        ("importfail", "ModuleNotFoundError: No module named 'gpubench_no_such_dependency'"),
                        ("exitfail", "SystemExit: 3")):
        with pytest.raises(BrokenBackend, match=f"backend '{name}' is broken: {words}"):
            get_backend(name)
    assert get_backend("numpy").name == "numpy"


def test_list_shows_every_broken_plugin_with_its_reason_in_bounded_time(hostile):
    t0 = time.monotonic()
    proc = run_gpubench("list", "backends", timeout=120)
    took = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0]: line for line in proc.stdout.splitlines()[2:] if line.strip()}
    assert " yes " in rows["numpy"] and " yes " in rows["banner"]
    assert "no" in rows["ctorfail"].split() and "RuntimeError: constructor exploded" in rows["ctorfail"]
    assert "No module named 'gpubench_no_such_dependency'" in rows["importfail"]
    assert "SystemExit: 3" in rows["exitfail"]
    assert "loadfail: RuntimeError: driver table corrupt" in rows["loadfail"]
    assert "loadhang: probe gave no answer within 5 s" in rows["loadhang"]
    assert "BANNER" not in proc.stdout
    assert took < 60


def test_env_json_stays_clean_with_a_printing_plugin(hostile):
    proc = run_gpubench("env", "--json", "--backend", "numpy,banner,loadfail,ctorfail", timeout=120)
    assert proc.returncode == 0, proc.stderr
    env = json.loads(proc.stdout)  # a banner on stdout would make this fail
    backends = env["backends"]
    assert backends["numpy"]["available"] and backends["banner"]["banner"] == "printed"
    assert backends["loadfail"] == {"available": False, "reason": "loadfail: RuntimeError: driver table corrupt",
                                    "device_kinds": ["cpu"], "workloads": ["matmul"]}
    assert "constructor exploded" in backends["ctorfail"]["reason"]
    text = run_gpubench("env", "--backend", "loadhang", "--probe-timeout", "2", timeout=60)
    assert text.returncode == 0 and "loadhang  unavailable: loadhang: probe gave no answer within 2 s" in text.stdout


def test_run_with_a_filter_never_loads_other_backends(hostile, tmp_path):
    proc = run_gpubench("run", "--suite", suite(tmp_path, ["numpy"]), "--quick", "--backend", "numpy")
    assert proc.returncode == 0, proc.stderr
    assert "broken" not in proc.stderr and proc.stdout.count(" ok ") == 2


def test_a_suite_naming_broken_plugins_runs_the_rest_and_says_why(hostile, tmp_path, store_path):
    from gpubench.store import ResultStore

    proc = run_gpubench("run", "--suite", suite(tmp_path, ["numpy", "ctorfail", "importfail", "loadfail",
                                                           "loadhang", "banner"]), "--quick")
    assert proc.returncode == 0, proc.stderr
    warnings = [ln for ln in proc.stderr.splitlines() if ln.startswith("gpubench: warning: backend")]
    assert warnings == [
        "gpubench: warning: backend 'ctorfail' is broken: RuntimeError: constructor exploded; its cases are left out",
        "gpubench: warning: backend 'importfail' is broken: ModuleNotFoundError: No module named "
        "'gpubench_no_such_dependency'; its cases are left out"]
    with ResultStore(store_path, readonly=True) as store:
        run = store.run()
        got = {(r.spec.backend, r.spec.param_dict["m"]): r for r in store.results(run.id)}
        backends = run.environment["backends"]
    assert run.status == "complete"
    assert all(got[("numpy", m)].status == "ok" and got[("banner", m)].status == "ok" for m in (16, 32))
    assert got[("loadfail", 16)].status == "error" and "driver table corrupt" in got[("loadfail", 16)].error
    # A probe that hangs is killed after the probe timeout and the backend's cases are skipped with that reason.
    assert got[("loadhang", 16)].status == "skipped"
    assert got[("loadhang", 32)].error == "loadhang: probe gave no answer within 5 s"
    assert backends["ctorfail"] == {"available": False,
                                    "reason": "backend 'ctorfail' is broken: RuntimeError: constructor exploded"}
    assert not backends["loadhang"]["available"]


def test_only_broken_backends_is_one_line_and_nothing_stored(hostile, tmp_path, store_path):
    proc = run_gpubench("run", "--suite", suite(tmp_path, ["numpy", "ctorfail"]), "--quick", "--backend", "ctorfail")
    assert proc.returncode == 1
    assert one_error_line(proc.stderr) == ("gpubench: error: no cases to run in suite 'tiny': backend 'ctorfail' "
                                           "is broken: RuntimeError: constructor exploded")
    assert not store_path.exists()

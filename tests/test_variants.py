"""Variants narrower than their backend (CUDA graphs): declared in op modules, expanded where they run.

Static declarations only: nothing here imports torch or CuPy.
"""

from __future__ import annotations

import subprocess
import sys

from gpubench.backends import get_backend
from gpubench.spec import expand, load_suite


def _write(tmp_path, text):
    path = tmp_path / "suite.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_graph_variants_are_declared_and_the_defaults_are_unchanged():
    torch, cupy = get_backend("torch"), get_backend("cupy")
    assert torch.variants("matmul") == ("default", "graph")
    assert torch.variants("saxpy") == ("default", "graph")
    assert cupy.variants("matmul")[0] == "cublas" and "graph" in cupy.variants("matmul")
    assert cupy.variants("saxpy")[0] == "elementwise" and "graph" in cupy.variants("saxpy")
    assert torch.variant_device_kinds("saxpy", "graph") == ("cuda",)
    assert torch.variant_device_kinds("saxpy", "default") == ("cpu", "cuda")
    assert torch.variants("conv2d") == ("default",)


def test_declaring_variants_imports_no_framework():
    code = ("import sys\n"
            "from gpubench.backends import get_backend\n"
            "b = get_backend('torch')\n"
            "assert b.variant_device_kinds('matmul', 'graph') == ('cuda',)\n"
            "assert 'torch' not in sys.modules and 'cupy' not in sys.modules\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_suites_expand_a_cuda_only_variant_on_cuda_devices_only(tmp_path):
    suite = load_suite(_write(tmp_path, """
name = "t"
[[cases]]
workload = "saxpy"
backends = ["torch"]
params = { n = [1024] }
"""))
    got = {(s.variant, s.device) for s in expand(suite, check_memory=False)}
    assert got == {("default", "cpu"), ("default", "cuda"), ("graph", "cuda")}


def test_asked_for_explicitly_it_is_expanded_and_skipped_with_its_reason(tmp_path):
    suite = load_suite(_write(tmp_path, """
name = "t"
[[cases]]
workload = "saxpy"
backends = ["torch"]
devices = ["cpu"]
variants = ["graph"]
params = { n = [1024] }
"""))
    specs = expand(suite, check_memory=False)
    assert [(s.variant, s.device) for s in specs] == [("graph", "cpu")]
    from gpubench.case import run_case

    r = run_case(specs[0])
    assert r.status == "skipped"
    assert r.error == "torch: variant 'graph' of saxpy runs on cuda devices only, not on cpu"


def test_builtin_suites_run_graphs_on_cuda_only():
    for name in ("matmul", "saxpy"):
        specs = expand(load_suite(name), quick=True, check_memory=False)
        graphs = [s for s in specs if s.variant == "graph"]
        assert graphs and all(s.device.startswith("cuda") for s in graphs)
        assert {s.backend for s in graphs} == {"torch", "cupy"}

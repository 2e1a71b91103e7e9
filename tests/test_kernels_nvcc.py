"""Every CUDA kernel source compiles with nvcc (to PTX), so a broken .cu fails CI without a GPU."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

KERNELS = Path(__file__).resolve().parents[1] / "kernels"
SOURCES = sorted((KERNELS / "cuda").glob("*.cu"))
NVCC = shutil.which("nvcc")

#: Prints, from an installed gpubench, where the package is and every kernel source it ships with its text.
_LIST_INSTALLED = """
import json, gpubench
from importlib.resources import files
root = files("gpubench.kernels")
print(json.dumps({"package": gpubench.__file__,
                  "kernels": {f"{d}/{f.name}": f.read_text() for d in ("cuda", "opencl")
                              for f in (root / d).iterdir() if f.name.endswith((".cu", ".cl"))}}))
"""


@pytest.mark.slow
def test_kernel_sources_ship_in_the_package(tmp_path):
    """Installed from a wheel into a directory of its own (not the repository an editable install reads),
    gpubench finds every CUDA and OpenCL kernel source through ``importlib.resources``, as its backends do."""
    # Built from a copy of the sources, so no build directory of the repository (or a file left in one) counts.
    source, target = tmp_path / "src", tmp_path / "site"
    repo = KERNELS.parent
    for name in ("pyproject.toml", "README.md"):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(repo / name, source / name)
    for name in ("gpubench", "kernels", "suites"):
        shutil.copytree(repo / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                           "--no-compile", "--target", str(target), str(source)],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0 and "No module named" in proc.stderr:
        pytest.skip(f"cannot build gpubench here: {proc.stderr.strip().splitlines()[-1]}")
    assert proc.returncode == 0, proc.stderr
    # -S: no site-packages, so no editable install's path hook; the only gpubench is the one in ``target``.
    run = subprocess.run([sys.executable, "-S", "-c", _LIST_INSTALLED], capture_output=True, text=True,
                         cwd=tmp_path, env={"PYTHONPATH": str(target), "PATH": os.environ.get("PATH", "")},
                         timeout=120)
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout)
    assert Path(found["package"]).resolve().is_relative_to(target.resolve())
    shipped = {f"{p.parent.name}/{p.name}": p.read_text() for p in sorted(KERNELS.glob("*/*")) if p.suffix in
               (".cu", ".cl")}
    assert {"cuda/saxpy.cu", "cuda/matmul_naive.cu", "cuda/matmul_tiled.cu", "cuda/attention_softmax.cu",
            "opencl/matmul_tiled.cl", "opencl/saxpy.cl"} <= set(shipped)
    assert found["kernels"] == shipped  # every source, with the repository's text


@pytest.mark.skipif(NVCC is None, reason="nvcc not on PATH (install the CUDA toolkit to check the kernels)")
@pytest.mark.parametrize("source", SOURCES, ids=[p.name for p in SOURCES])
def test_compiles_to_ptx(source, tmp_path):
    out = tmp_path / (source.stem + ".ptx")
    proc = subprocess.run([NVCC, "--ptx", "-o", str(out), str(source)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"nvcc failed on {source.name}:\n{proc.stderr}"
    ptx = out.read_text()
    # Every extern "C" kernel of the file made it into the PTX under its plain name.
    for line in source.read_text().splitlines():
        if line.startswith('extern "C" __global__ void '):
            name = line.split("void ", 1)[1].split("(", 1)[0]
            assert f".entry {name}(" in ptx, f"{name} missing from the PTX of {source.name}"

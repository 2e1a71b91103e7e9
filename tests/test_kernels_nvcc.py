"""Every CUDA kernel source compiles with nvcc (to PTX), so a broken .cu fails CI without a GPU."""

from __future__ import annotations

import shutil
import subprocess
from importlib.resources import files
from pathlib import Path

import pytest

CUDA_DIR = Path(str(files("gpubench.kernels"))) / "cuda"
SOURCES = sorted(CUDA_DIR.glob("*.cu"))
NVCC = shutil.which("nvcc")


def test_kernel_sources_ship_in_the_package():
    names = {p.name for p in SOURCES}
    assert {"saxpy.cu", "matmul_naive.cu", "matmul_tiled.cu", "attention_softmax.cu"} <= names


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

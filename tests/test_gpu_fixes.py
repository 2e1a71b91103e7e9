"""On a GPU machine, ``gpubench list`` names the exact command that lets each backend use the GPU."""

from __future__ import annotations

import os
import stat
from importlib import metadata

import pytest
from conftest import run_gpubench

from gpubench.probe import GPU_EXTRA_COMMAND, driver_cuda_major, gpu_fix_lines, gpu_fixes

H100 = {"name": "NVIDIA H100 80GB HBM3", "memory": "81559 MiB", "driver": "570.86.15", "bus_id": "00000000:00:07.0"}
CPU = {"id": "cpu", "kind": "cpu"}
CUDA = {"id": "cuda:0", "kind": "cuda"}


def facts(**extra):
    base = {"torch": {"available": True, "devices": [CPU], "torch": "2.13.0+cpu"},
            "jax": {"available": True, "devices": [CPU], "jax_cuda": "Unknown backend cuda."},
            "tensorflow": {"available": True, "devices": [CPU]},
            "cupy": {"available": False, "reason": "cupy: no CUDA driver found"},
            "numpy": {"available": True, "devices": [CPU]}}
    base.update(extra)
    return base


def installed(versions):
    return lambda dist: versions.get(dist)


CPU_STACK = {"torch": "2.13.0+cpu", "jax": "0.10.2", "tensorflow-cpu": "2.21.0", "cupy-cuda13x": "14.2.0"}


def test_cpu_builds_on_a_cuda_12_driver():
    got = gpu_fixes(facts(), [H100], installed(CPU_STACK))
    assert got["torch"] == ("torch 2.13.0+cpu is a CPU build: pip install --force-reinstall torch==2.13.0 "
                            "--index-url https://download.pytorch.org/whl/cu128")
    assert got["jax"].endswith('pip install "jax[cuda12]==0.10.2"')
    assert got["tensorflow"].endswith('pip uninstall -y tensorflow-cpu && pip install "tensorflow[and-cuda]==2.21.0"')
    # CuPy built for CUDA 13 on a driver that runs CUDA 12: the matching wheel, with its libraries.
    assert got["cupy"].endswith('pip uninstall -y cupy-cuda13x && pip install "cupy-cuda12x[ctk]"')
    assert "numpy" not in got


def test_a_cuda_13_driver_gets_cuda_13_builds_and_cupy_keeps_its_own_fix():
    gpu = {**H100, "driver": "580.65.06"}
    reason = 'cupy: libnvrtc.so.13 not found — pip install "cupy-cuda13x[ctk]"'
    got = gpu_fixes(facts(cupy={"available": False, "reason": reason}), [gpu], installed(CPU_STACK))
    assert got["torch"].endswith("--index-url https://download.pytorch.org/whl/cu130")
    assert got["jax"].endswith('pip install "jax[cuda13]==0.10.2"')
    assert got["cupy"] == 'libnvrtc.so.13 not found — pip install "cupy-cuda13x[ctk]"'


def test_missing_frameworks_and_backends_that_already_see_the_gpu():
    ok = {"available": True, "devices": [CPU, CUDA]}
    got = gpu_fixes(facts(torch=ok, jax=ok), [H100], installed({}))
    assert set(got) == {"tensorflow", "cupy"}
    assert got["tensorflow"] == 'not installed: pip install "tensorflow[and-cuda]"'
    assert got["cupy"] == 'not installed: pip install "cupy-cuda12x[ctk]"'
    assert gpu_fixes(facts(), [], installed(CPU_STACK)) == {}  # no GPU: nothing to fix
    old = gpu_fixes(facts(), [{**H100, "driver": "470.256.02"}], installed(CPU_STACK))
    assert set(old) == {"torch", "jax", "tensorflow", "cupy"} and all("update the driver" in v for v in old.values())
    assert driver_cuda_major("525.60.13") == 12 and driver_cuda_major("580.65.06") == 13
    assert driver_cuda_major("") is None


def test_fix_lines_name_the_gpu_and_the_one_command_for_all():
    lines = gpu_fix_lines(facts(), [H100, H100], installed(CPU_STACK))
    assert lines[0].startswith("nvidia-smi lists 2 GPUs (NVIDIA H100 80GB HBM3), but 4 backends cannot use them")
    assert lines[-1].endswith(GPU_EXTRA_COMMAND)
    assert gpu_fix_lines(facts(), [], installed(CPU_STACK)) == []


def fake_nvidia_smi(where, line: str):
    where.mkdir()
    exe = where / "nvidia-smi"
    exe.write_text(f"#!/bin/sh\necho '{line}'\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return {"PATH": f"{where}{os.pathsep}{os.environ.get('PATH', '')}"}


@pytest.mark.slow
def test_gpubench_list_on_a_machine_with_a_gpu_its_backends_cannot_use(tmp_path):
    # This machine's frameworks are CPU builds; nvidia-smi (faked) says there is an H100 with a CUDA 12 driver.
    pytest.importorskip("jax")
    env = fake_nvidia_smi(tmp_path / "bin", "NVIDIA H100 80GB HBM3, 81559 MiB, 570.86.15, 00000000:00:07.0")
    got = run_gpubench("list", "backends", env=env)
    assert got.returncode == 0, got.stderr
    assert "nvidia-smi lists 1 GPU (NVIDIA H100 80GB HBM3), but" in got.stdout
    jax = metadata.version("jax")
    assert f'  jax: jax {jax} has no CUDA backend: pip install "jax[cuda12]=={jax}"' in got.stdout
    torch = metadata.version("torch")
    if "+cpu" in torch:
        assert (f"  torch: torch {torch} is a CPU build: pip install --force-reinstall torch=={torch.split('+')[0]} "
                "--index-url https://download.pytorch.org/whl/cu128") in got.stdout
    assert GPU_EXTRA_COMMAND in got.stdout
    # Without a GPU, nothing of the kind.
    plain = run_gpubench("list", "backends", env=fake_nvidia_smi(tmp_path / "none", ""))
    assert plain.returncode == 0 and "nvidia-smi lists" not in plain.stdout

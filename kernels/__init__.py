"""Kernel sources (CUDA under ``cuda/``, OpenCL under ``opencl/``), shipped as ``gpubench.kernels``."""

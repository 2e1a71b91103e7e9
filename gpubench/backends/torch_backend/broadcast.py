"""torch broadcast across N ranks (gloo on the CPU, NCCL on CUDA).

The implementation is :mod:`gpubench.backends.torch_backend.collective`.
"""

from gpubench.backends.torch_backend.collective import build, unsupported

__all__ = ["build", "unsupported"]

"""CuPy on CUDA GPUs (placeholder until the accelerator-backends issue lands)."""

from gpubench.backends.base import Backend
from gpubench.errors import Unavailable


class CupyBackend(Backend):
    """CuPy arrays and raw CUDA kernels."""

    name = "cupy"
    device_kinds = ("cuda",)
    extra = "cupy"
    ops_package = "gpubench.backends.cupy_backend"

    def load(self):
        raise Unavailable("cupy: adapter not implemented yet")

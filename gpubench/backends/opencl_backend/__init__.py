"""PyOpenCL on any OpenCL device (placeholder until the accelerator-backends issue lands)."""

from gpubench.backends.base import Backend
from gpubench.errors import Unavailable


class OpenclBackend(Backend):
    """PyOpenCL kernels from kernels/opencl."""

    name = "opencl"
    device_kinds = ("opencl",)
    extra = "opencl"
    ops_package = "gpubench.backends.opencl_backend"

    def load(self):
        raise Unavailable("opencl: adapter not implemented yet")

"""NumPy on the CPU: the reference backend and the default CPU baseline."""

from __future__ import annotations

import os

from gpubench.backends.base import Backend, DeviceInfo


class NumpyBackend(Backend):
    """NumPy arrays on the host; matmul goes through whatever BLAS NumPy was built with."""

    name = "numpy"
    device_kinds = ("cpu",)
    extra = ""
    ops_package = "gpubench.backends.numpy_backend"
    description = "NumPy (CPU, its BLAS)"

    def devices(self):
        from gpubench.envinfo import cpu_model

        return [DeviceInfo("cpu", cpu_model(), "cpu", dtypes=("float64", "float32", "float16"),
                           details={"threads": os.cpu_count()})]

    def environment(self):
        import numpy as np

        from gpubench.envinfo import blas_info

        return {"numpy": np.__version__, "blas": blas_info()}

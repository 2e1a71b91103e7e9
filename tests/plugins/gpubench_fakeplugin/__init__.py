"""A third-party backend plug-in for the tests, discovered through the gpubench.backends entry point.

Its matmul variants misbehave on purpose: ``good`` computes with NumPy, ``wrong`` returns a
perturbed result, ``raise`` raises, ``crash`` kills its own process with SIGSEGV, ``hang``
sleeps forever, ``exit`` calls os._exit(3).
"""

from gpubench.backends.base import Backend, DeviceInfo


class FakeBackend(Backend):
    """A CPU backend whose behaviour is chosen by the case's variant."""

    name = "fake"
    device_kinds = ("cpu",)
    ops_package = "gpubench_fakeplugin.ops"

    def devices(self):
        return [DeviceInfo("cpu", "fake cpu", "cpu", dtypes=("float64", "float32"))]

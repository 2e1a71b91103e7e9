"""TensorFlow on CPU and GPU (placeholder until the accelerator-backends issue lands)."""

from gpubench.backends.base import Backend
from gpubench.errors import Unavailable


class TensorflowBackend(Backend):
    """TensorFlow ops traced with tf.function."""

    name = "tensorflow"
    device_kinds = ("cpu", "cuda")
    extra = "tensorflow"
    ops_package = "gpubench.backends.tensorflow_backend"

    def load(self):
        raise Unavailable("tensorflow: adapter not implemented yet")

"""The input pipeline on TensorFlow: ``tf.data`` feeding a Keras model's training step.

The stream is ``Dataset.range(positions)`` mapped by one function that reads the case's plan (image,
crop window, flip of each position), decodes with ``tf.io.decode_jpeg`` (``INTEGER_ACCURATE``, the
IDCT Pillow uses) or ``decode_png``, crops, flips and normalizes; then ``batch`` and ``prefetch``.
``num_workers`` is ``map``'s ``num_parallel_calls`` (threads of TensorFlow's pool; 0: sequential,
no prefetch) and ``prefetch_factor`` the ``prefetch`` buffer in batches. TensorFlow has no pinned
memory or non-blocking option to set: those cases are skipped. The step is a ``tf.function`` of
forward, sparse cross-entropy, gradients and ``SGD(momentum=0.9)`` on the ``cnn`` or ``small`` model
(Keras has no ResNet-18; torch runs it). Batches are NHWC, as Keras convolutions want.
"""

from __future__ import annotations

import numpy as np

from gpubench.workloads.input_pipeline import PipelineSession
from gpubench.workloads.pipeline_data import IMAGENET_MEAN, IMAGENET_STD, MNIST_MEAN, MNIST_STD


def unsupported(backend, spec, params, device) -> str | None:
    """tf.data has no pinned-memory or non-blocking switch; Keras has no ResNet-18."""
    if params["pin_memory"] or params["non_blocking"]:
        return "tensorflow: pin_memory and non_blocking are torch DataLoader options (tf.data has none)"
    if params["model"] == "resnet18":
        return "tensorflow: resnet18 is defined for torch only (Keras ships no ResNet-18)"
    return None


def keras_model(keras, model: str, classes: int, side: int):
    """The ``cnn`` or ``small`` model as a Keras ``Sequential`` on NHWC input (logits out)."""
    layers = keras.layers
    if model == "cnn":
        return keras.Sequential([
            keras.Input((side, side, 1)), layers.Conv2D(6, 5, activation="relu"), layers.MaxPooling2D(2),
            layers.Conv2D(16, 5, activation="relu"), layers.MaxPooling2D(2), layers.Flatten(),
            layers.Dense(120, activation="relu"), layers.Dense(10)])
    return keras.Sequential([
        keras.Input((side, side, 3)),
        layers.Conv2D(16, 3, strides=2, padding="same", activation="relu"),
        layers.Conv2D(32, 3, strides=2, padding="same", activation="relu"),
        layers.Conv2D(64, 3, strides=2, padding="same", activation="relu"),
        layers.GlobalAveragePooling2D(), layers.Dense(classes)])


class TfPipeline(PipelineSession):
    """A ``tf.data`` pipeline over the case's stream and a compiled training step."""

    def __init__(self, backend, spec, params, inputs, device):
        from gpubench.workloads import get_workload

        tf = self.tf = backend.tf
        self.backend, self.device, self.params = backend, device, params
        workload = get_workload("input_pipeline")
        self.name = backend.tf_device(device)
        self.side = workload.side(params)
        plan, digits = inputs["plan"], params["dataset"] == "mnist"
        self.index = tf.constant(plan.index)
        self.top, self.left, self.flip = tf.constant(plan.top), tf.constant(plan.left), tf.constant(plan.flip)
        self.labels = tf.constant(inputs["labels"])
        if digits:
            self.items = tf.constant(np.stack(list(inputs["items"])))
        else:
            self.items = tf.constant(list(inputs["items"]), dtype=tf.string)
        self.positions = len(plan)
        tf.keras.utils.set_random_seed(params["seed"])
        with tf.device(self.name):
            self.net = keras_model(tf.keras, params["model"], workload.classes(params), self.side)
            self.opt = tf.keras.optimizers.SGD(learning_rate=params["lr"], momentum=0.9)
        loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        net, opt = self.net, self.opt

        @tf.function
        def step(x, y):
            with tf.GradientTape() as tape:
                loss = loss_fn(y, net(x, training=True))
            opt.apply_gradients(zip(tape.gradient(loss, net.trainable_variables), net.trainable_variables))
            return loss

        self._step = step
        self.info = {"loader": "tf.data", "num_parallel_calls": params["num_workers"] or None,
                     "prefetch_batches": params["prefetch_factor"] if params["num_workers"] else 0}

    def _load(self, p):
        tf, crop = self.tf, self.side
        i = tf.gather(self.index, p)
        if self.params["dataset"] == "mnist":
            x = tf.cast(tf.gather(self.items, i), tf.float32)[..., None] / 255.0
            x = (x - MNIST_MEAN) / MNIST_STD
        else:
            data = tf.gather(self.items, i)
            if self.params["format"] == "jpeg":
                img = tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE")
            else:
                img = tf.io.decode_png(data, channels=3)
            img = tf.slice(img, tf.stack([tf.gather(self.top, p), tf.gather(self.left, p), 0]), [crop, crop, 3])
            img = tf.cond(tf.gather(self.flip, p), lambda: tf.reverse(img, [1]), lambda: img)
            x = (tf.cast(img, tf.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
        return x, tf.gather(self.labels, i)

    def loader(self):
        tf, p = self.tf, self.params
        workers = p["num_workers"]
        ds = tf.data.Dataset.range(self.positions)
        ds = ds.map(self._load, num_parallel_calls=workers, deterministic=True) if workers else ds.map(self._load)
        ds = ds.batch(p["batch_size"], drop_remainder=True)
        if workers:
            ds = ds.prefetch(p["prefetch_factor"])
        return iter(ds)

    def host_arrays(self, batch):
        x, y = batch
        return x.numpy().transpose(0, 3, 1, 2), y.numpy()

    def to_device(self, batch):
        return batch  # TensorFlow places the step's inputs itself

    def step(self, batch):
        with self.tf.device(self.name):
            return self._step(*batch)

    def loss_value(self, loss) -> float:
        return float(loss.numpy())

    def sync(self) -> None:
        self.backend.synchronize(self.device)

    def close(self) -> None:
        self.net = self.opt = self._step = None


def build(backend, spec, params, inputs, device) -> TfPipeline:
    """The tf.data pipeline and the training step of one case."""
    return TfPipeline(backend, spec, params, inputs, device)

"""MNIST training in Keras on TensorFlow: ``Sequential`` models trained with ``model.fit``.

The layers use Keras' own ``GlorotUniform``/``Zeros`` initializers and are then loaded with the
workload's shared initial weights, so every backend starts from the same point. Each epoch is one
``model.fit(..., epochs=1, shuffle=False)`` over the training set laid out in the shared epoch
order (the NumPy gather that lays it out is inside the epoch clock, as every backend's batch
gathers are); evaluation is ``model.evaluate`` on the evaluation set, timed separately by the
workload. The CNN runs channels-last (NHWC, the
layout Keras convolutions support on CPUs): its kernels and the first dense layer's rows are
permuted from the shared channels-first layout accordingly.
"""

from __future__ import annotations

import numpy as np

from gpubench.workloads.training import TrainingSession, weights_of


def keras_weights(model: str, w: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The shared weights in the order and layout of the Keras model's ``get_weights()``."""
    if model == "mlp":
        return [w["w1"], w["b1"], w["w2"], w["b2"]]
    conv = [a.transpose(2, 3, 1, 0) for a in (w["c1"], w["c2"])]          # (K,C,R,S) -> (R,S,C,K)
    w3 = w["w3"].reshape(16, 4, 4, 120).transpose(1, 2, 0, 3).reshape(256, 120)  # (C,H,W) -> (H,W,C) rows
    return [conv[0], w["cb1"], conv[1], w["cb2"], w3, w["b3"], w["w4"], w["b4"]]


def make_model(keras, model: str, dropout: float, seed: int):
    """The workload's model as a Keras ``Sequential`` (logits out; softmax folded into the loss)."""
    layers = keras.layers

    def init(i):
        return {"kernel_initializer": keras.initializers.GlorotUniform(seed=seed + i), "bias_initializer": "zeros"}

    if model == "mlp":
        return keras.Sequential([
            keras.Input((784,)), layers.Dense(128, activation="relu", **init(0)),
            layers.Dropout(dropout, seed=seed), layers.Dense(10, **init(1))])
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        layers.Conv2D(6, 5, activation="relu", **init(0)), layers.MaxPooling2D(2),
        layers.Conv2D(16, 5, activation="relu", **init(1)), layers.MaxPooling2D(2),
        layers.Flatten(), layers.Dense(120, activation="relu", **init(2)), layers.Dense(10, **init(3))])


class KerasSession(TrainingSession):
    """A compiled Keras model of one MNIST case on a TensorFlow device; one ``fit`` call per epoch."""

    def __init__(self, backend, spec, params, inputs, device):
        self.backend, self.device, self.params, self.dtype = backend, device, params, spec.dtype
        self.tf = tf = backend.tf
        self.keras = tf.keras
        self.name = backend.tf_device(device)
        shape = (-1, 784) if params["model"] == "mlp" else (-1, 28, 28, 1)
        host = np.dtype(spec.dtype)
        self.x_train = inputs["x_train"].astype(host, copy=False).reshape(shape)
        self.x_eval = inputs["x_eval"].astype(host, copy=False).reshape(shape)
        self.y_train, self.y_eval, self.order = inputs["y_train"], inputs["y_eval"], inputs["order"]
        self.weights = keras_weights(params["model"], weights_of(inputs))
        self.net = None

    def start(self) -> None:
        keras, p = self.keras, self.params
        keras.utils.set_random_seed(p["seed"] + 1)
        keras.backend.set_floatx(self.dtype)
        with self.tf.device(self.name):
            net = make_model(keras, p["model"], p["dropout"], p["seed"])
            net.set_weights(self.weights)
            if p["optimizer"] == "sgd":
                opt = keras.optimizers.SGD(learning_rate=p["lr"])
            else:
                opt = keras.optimizers.Adam(learning_rate=p["lr"], epsilon=1e-7)
            net.compile(optimizer=opt, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                        metrics=["accuracy"])
        self.net = net

    def train_epoch(self, epoch: int) -> float:
        # The gather into the epoch's order is part of the epoch, as every backend's batch gathers are.
        order = self.order[epoch]
        with self.tf.device(self.name):
            hist = self.net.fit(self.x_train[order], self.y_train[order], batch_size=self.params["batch_size"],
                                epochs=1, shuffle=False, verbose=0)
        return float(hist.history["loss"][0])

    def evaluate(self) -> tuple[float, float]:
        with self.tf.device(self.name):
            loss, acc = self.net.evaluate(self.x_eval, self.y_eval, batch_size=1000, verbose=0)
        return float(loss), float(acc)

    def sync(self) -> None:
        self.backend.synchronize(self.device)

    def close(self) -> None:
        self.net = None
        self.keras.backend.clear_session()


def build(backend, spec, params, inputs, device):
    """The Keras session (TF32 off: float32 cases are checked as float32)."""
    backend.tf.config.experimental.enable_tensor_float_32_execution(False)
    return KerasSession(backend, spec, params, inputs, device)

"""MNIST training in Keras on TensorFlow: ``Sequential`` models trained with ``model.fit``.

The layers use Keras' own ``GlorotUniform``/``Zeros`` initializers and are then loaded with the
workload's shared initial weights, so every backend starts from the same point. Each epoch is one
``model.fit(..., epochs=1, shuffle=False)`` over the training set laid out in the shared epoch
order (the NumPy gather that lays it out happens before the epoch clock starts); evaluation is
``model.evaluate`` on the evaluation set, timed separately. The CNN runs channels-last (NHWC, the
layout Keras convolutions support on CPUs): its kernels and the first dense layer's rows are
permuted from the shared channels-first layout accordingly.
"""

from __future__ import annotations

import time

import numpy as np

from gpubench.workloads.mnist import training_op, weights_of


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


def build(backend, spec, params, inputs, device):
    """Build and compile the model on the device; ``call`` runs the whole training once."""
    tf = backend.tf
    keras = tf.keras
    tf.config.experimental.enable_tensor_float_32_execution(False)
    name = backend.tf_device(device)
    shape = (-1, 784) if params["model"] == "mlp" else (-1, 28, 28, 1)
    dtype = np.dtype(spec.dtype)
    x_train = inputs["x_train"].astype(dtype, copy=False).reshape(shape)
    x_eval = inputs["x_eval"].astype(dtype, copy=False).reshape(shape)
    y_train, y_eval, order = inputs["y_train"], inputs["y_eval"], inputs["order"]
    weights = keras_weights(params["model"], weights_of(inputs))
    bs = params["batch_size"]

    def run():
        keras.utils.set_random_seed(params["seed"] + 1)
        keras.backend.set_floatx(spec.dtype)
        with tf.device(name):
            net = make_model(keras, params["model"], params["dropout"], params["seed"])
            net.set_weights(weights)
            if params["optimizer"] == "sgd":
                opt = keras.optimizers.SGD(learning_rate=params["lr"])
            else:
                opt = keras.optimizers.Adam(learning_rate=params["lr"], epsilon=1e-7)
            net.compile(optimizer=opt, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                        metrics=["accuracy"])
            curve = []
            for epoch in range(params["epochs"]):
                xe, ye = x_train[order[epoch]], y_train[order[epoch]]
                backend.synchronize(device)
                t0 = time.perf_counter()
                hist = net.fit(xe, ye, batch_size=bs, epochs=1, shuffle=False, verbose=0)
                backend.synchronize(device)
                t1 = time.perf_counter()
                eval_loss, acc = net.evaluate(x_eval, y_eval, batch_size=1000, verbose=0)
                t2 = time.perf_counter()
                curve.append({"epoch": epoch + 1, "epoch_s": t1 - t0, "eval_s": t2 - t1,
                              "train_loss": float(hist.history["loss"][0]), "eval_loss": float(eval_loss),
                              "eval_accuracy": float(acc)})
        return curve

    def close():
        keras.backend.clear_session()

    return training_op(params, run, close=close)

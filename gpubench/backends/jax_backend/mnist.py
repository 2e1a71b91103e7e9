"""MNIST training in JAX: ``jax.value_and_grad`` of the workload's models, one jitted step per minibatch.

The models are the workload's (``mlp``: 784 → 128 ReLU → dropout → 10; ``cnn``: LeNet-style,
``lax.conv_general_dilated`` in NCHW/OIHW and ``lax.reduce_window`` max-pooling), loaded with the
shared initial weights in their shared layout (dense ``(in, out)``, conv ``(K, C, R, S)``). SGD and
Adam are written out as in the NumPy reference (Adam: β₁ 0.9, β₂ 0.999, ε 1e-7 added after the bias
correction). Dropout masks come from ``jax.random`` with the fixed key ``seed + 1``, split once per
step, so every run of a case draws the same masks.

The whole training and evaluation set is uploaded once; the per-epoch orders are uploaded as one
index array per minibatch when the session is built. A training step (gather of the minibatch on
the device, forward, backward, update) is one call of an executable compiled when the session is
built (``jax.jit(step).lower(...).compile()``), with the parameters and optimizer state donated so
XLA updates them in place. The batch losses are summed on the device and read once per epoch.
float32 products and convolutions run at ``Precision.HIGHEST`` (no TF32 on GPUs).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpubench.workloads.training import TrainingSession, weights_of

ADAM_BETA1, ADAM_BETA2, ADAM_EPS = 0.9, 0.999, 1e-7  # ε as in the NumPy reference and Keras


def unsupported(backend, spec, params, device):
    """Training runs in float32 or float64 (Adam's ε = 1e-7 vanishes in 16-bit floats)."""
    if spec.dtype not in ("float32", "float64"):
        return f"jax: mnist trains in float32 or float64, not {spec.dtype}"
    return None


def model_functions(jax, params: dict[str, Any], precision: Any):
    """``(step, evaluate)`` of the case's model and optimizer, as plain functions for ``jax.jit``.

    ``step(p, opt, key, loss_sum, x_all, y_all, idx)`` trains on the minibatch ``idx`` and returns
    ``(p, opt, key, loss_sum + loss)``; ``evaluate(p, x, y)`` returns the summed loss and the number
    of correct predictions (no dropout).
    """
    jnp, lax = jax.numpy, jax.lax
    model, optimizer, lr, dropout = params["model"], params["optimizer"], params["lr"], params["dropout"]

    def dense(x, w, b):
        return jnp.matmul(x, w, precision=precision) + b

    def conv(x, w, b):
        y = lax.conv_general_dilated(x, w, window_strides=(1, 1), padding="VALID",
                                     dimension_numbers=("NCHW", "OIHW", "NCHW"), precision=precision)
        return y + b[None, :, None, None]

    def pool(x):
        return lax.reduce_window(x, -jnp.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")

    def logits_of(p, x, key):
        if model == "mlp":
            a = jax.nn.relu(dense(x, p["w1"], p["b1"]))
            if key is not None and dropout > 0:
                keep = jax.random.uniform(key, a.shape, a.dtype) >= dropout
                a = a * (keep.astype(a.dtype) * (1.0 / (1.0 - dropout)))
            return dense(a, p["w2"], p["b2"])
        n = x.shape[0]
        h = pool(jax.nn.relu(conv(x.reshape(n, 1, 28, 28), p["c1"], p["cb1"])))   # (N, 6, 12, 12)
        h = pool(jax.nn.relu(conv(h, p["c2"], p["cb2"])))                          # (N, 16, 4, 4)
        f = h.reshape(n, 256)                                                       # (C, H, W) order
        return dense(jax.nn.relu(dense(f, p["w3"], p["b3"])), p["w4"], p["b4"])

    def losses(logits, y):
        return jax.nn.logsumexp(logits, axis=1) - jnp.take_along_axis(logits, y[:, None], axis=1)[:, 0]

    def mean_loss(p, x, y, key):
        return jnp.mean(losses(logits_of(p, x, key), y))

    tree_map = jax.tree_util.tree_map

    def step(p, opt, key, loss_sum, x_all, y_all, idx):
        key, sub = jax.random.split(key)
        loss, g = jax.value_and_grad(mean_loss)(p, x_all[idx], y_all[idx], sub)
        if optimizer == "sgd":
            p = tree_map(lambda w, gw: w - lr * gw, p, g)
        else:
            t = opt["t"] + 1
            m = tree_map(lambda mw, gw: ADAM_BETA1 * mw + (1.0 - ADAM_BETA1) * gw, opt["m"], g)
            v = tree_map(lambda vw, gw: ADAM_BETA2 * vw + (1.0 - ADAM_BETA2) * (gw * gw), opt["v"], g)
            c1, c2 = 1.0 - ADAM_BETA1 ** t, 1.0 - ADAM_BETA2 ** t
            p = tree_map(lambda w, mw, vw: w - lr * (mw / c1) / (jnp.sqrt(vw / c2) + ADAM_EPS), p, m, v)
            opt = {"t": t, "m": m, "v": v}
        return p, opt, key, loss_sum + loss

    def evaluate(p, x, y):
        logits = logits_of(p, x, None)
        return jnp.sum(losses(logits, y)), jnp.sum(jnp.argmax(logits, axis=1) == y)

    return step, evaluate


class JaxSession(TrainingSession):
    """Parameters, optimizer state, data and compiled step of one MNIST case on a JAX device."""

    def __init__(self, backend, spec, params, inputs, device):
        jax = self.jax = backend.jax
        self.backend, self.device, self.params, self.dtype = backend, device, params, spec.dtype
        self.host_dtype = np.dtype(spec.dtype)
        self.jdev = backend.jax_device(device)
        self.weights = weights_of(inputs)
        self.x_train = backend.upload(inputs["x_train"], device, spec.dtype)
        self.y_train = backend.upload(inputs["y_train"].astype(np.int32), device)
        self.x_eval = backend.upload(inputs["x_eval"], device, spec.dtype)
        self.y_eval = backend.upload(inputs["y_eval"].astype(np.int32), device)
        order, bs = inputs["order"].astype(np.int32), params["batch_size"]
        host_batches = [[order[e, i:i + bs] for i in range(0, order.shape[1], bs)] for e in range(order.shape[0])]
        self.batches = jax.device_put(host_batches, self.jdev)  # one index array per minibatch, uploaded once
        self.zero = jax.device_put(np.zeros((), self.host_dtype), self.jdev)
        step, evaluate = model_functions(jax, params, backend.precision(spec.dtype))
        p, opt, key = self._fresh_state()
        # Compiled now, outside the epoch clock: one executable per minibatch size (a last, smaller
        # batch when batch_size does not divide the training set) and one for the evaluation.
        self.steps = {len(idx): backend.compile(step, p, opt, key, self.zero, self.x_train, self.y_train, idx,
                                                donate=(0, 1))
                      for idx in {len(b): b for b in self.batches[0]}.values()}
        self.eval_fn = backend.compile(evaluate, p, self.x_eval, self.y_eval)
        self.p = self.opt = self.key = None

    def _fresh_state(self):
        """The shared initial weights, zero optimizer state and the fixed dropout key, on the device."""
        jax, put = self.jax, self.backend.upload
        p = {k: put(v, self.device, self.dtype) for k, v in self.weights.items()}
        opt: dict[str, Any] = {}
        if self.params["optimizer"] == "adam":
            opt = {"t": put(np.zeros((), self.host_dtype), self.device),
                   "m": {k: put(np.zeros_like(v), self.device, self.dtype) for k, v in self.weights.items()},
                   "v": {k: put(np.zeros_like(v), self.device, self.dtype) for k, v in self.weights.items()}}
        key = jax.device_put(jax.random.key(self.params["seed"] + 1), self.jdev)
        return p, opt, key

    def start(self) -> None:
        self.p, self.opt, self.key = self._fresh_state()

    def train_epoch(self, epoch: int) -> float:
        p, opt, key, loss_sum = self.p, self.opt, self.key, self.zero
        steps, x, y = self.steps, self.x_train, self.y_train
        batches = self.batches[epoch]
        for idx in batches:
            p, opt, key, loss_sum = steps[idx.shape[0]](p, opt, key, loss_sum, x, y, idx)
        self.p, self.opt, self.key = p, opt, key
        self.backend.keep(self.device, loss_sum)
        return float(loss_sum) / len(batches)  # float() waits for the device

    def evaluate(self) -> tuple[float, float]:
        n = self.x_eval.shape[0]
        loss_sum, correct = self.eval_fn(self.p, self.x_eval, self.y_eval)  # the whole set in one call
        return float(loss_sum) / n, int(correct) / n

    def sync(self) -> None:
        self.backend.synchronize(self.device)

    def close(self) -> None:
        self.p = self.opt = self.key = self.steps = self.eval_fn = None
        self.x_train = self.x_eval = self.y_train = self.y_eval = self.batches = None


def build(backend, spec, params, inputs, device):
    """Data, compiled training step and evaluation of one case on the device."""
    return JaxSession(backend, spec, params, inputs, device)

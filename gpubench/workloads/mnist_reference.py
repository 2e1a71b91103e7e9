"""The MNIST reference training loop on an array module: hand-written forward and backward passes, SGD and Adam.

The code is written against an array module ``xp`` (NumPy for the float64 reference and the NumPy
backend, CuPy for the CuPy backend), so the same lines are the reference and the GPU port. It
imports no backend: the workload computes its float64 reference here, and the NumPy and CuPy
backends run the very same session on their arrays. Two models (see :mod:`gpubench.workloads.mnist`):

* ``mlp``: 784 → 128 ReLU → dropout → 10 (softmax folded into the cross-entropy loss).
* ``cnn``: conv 5×5 1→6, ReLU, max-pool 2 → conv 5×5 6→16, ReLU, max-pool 2 → 256 → 120 ReLU → 10.

Convolutions are im2col plus one GEMM. Activations of the CNN are kept channel-first *across the
batch* (``C, N, H, W``) so that the GEMM output needs no transpose; the flatten before the dense
layers uses (C, H, W) order per image, like PyTorch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from gpubench.workloads.training import TrainingSession, weights_of

ADAM_BETA1, ADAM_BETA2, ADAM_EPS = 0.9, 0.999, 1e-7


# --- layers ------------------------------------------------------------------------------------
def _im2col(xp, x, r: int, s: int):
    """``x`` (C, N, H, W) → columns (C·R·S, N·P·Q) for a stride-1, unpadded R×S convolution."""
    c, n, h, w = x.shape
    p, q = h - r + 1, w - s + 1
    cols = xp.empty((c, r, s, n, p, q), dtype=x.dtype)
    for i in range(r):
        for j in range(s):
            cols[:, i, j] = x[:, :, i:i + p, j:j + q]
    return cols.reshape(c * r * s, n * p * q)


def _col2im(xp, dcols, shape, r: int, s: int):
    """Adjoint of :func:`_im2col`: scatter-add column gradients back to (C, N, H, W)."""
    c, n, h, w = shape
    p, q = h - r + 1, w - s + 1
    dcols = dcols.reshape(c, r, s, n, p, q)
    dx = xp.zeros(shape, dtype=dcols.dtype)
    for i in range(r):
        for j in range(s):
            dx[:, :, i:i + p, j:j + q] += dcols[:, i, j]
    return dx


def _maxpool2(x):
    """2×2 max-pool of (C, N, H, W) with even H and W; returns the output and the argmax mask."""
    c, n, h, w = x.shape
    xr = x.reshape(c, n, h // 2, 2, w // 2, 2)
    out = xr.max(axis=(3, 5))
    mask = xr == out[:, :, :, None, :, None]
    return out, mask


def _maxpool2_backward(dout, mask):
    c, n, h2, _, w2, _ = mask.shape
    return (mask * dout[:, :, :, None, :, None]).reshape(c, n, h2 * 2, w2 * 2)


def _softmax_xent(xp, logits, y):
    """Mean cross-entropy of integer labels ``y`` and its gradient with respect to ``logits``."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = xp.exp(z)
    s = e.sum(axis=1, keepdims=True)
    rows = xp.arange(len(y))
    loss = (xp.log(s[:, 0]) - z[rows, y]).mean()
    grad = e / s
    grad[rows, y] -= 1
    grad /= len(y)
    return loss, grad


# --- the trainer -------------------------------------------------------------------------------
class Trainer:
    """One model's parameters, optimizer state and training step on array module ``xp``.

    ``weights`` are host arrays named as in :func:`gpubench.workloads.mnist.initial_weights`;
    ``uniform(shape)`` draws the dropout uniforms (a seeded generator of the backend's own).
    """

    def __init__(self, xp, model: str, weights: dict[str, np.ndarray], dtype: Any, optimizer: str, lr: float,
                 dropout: float, uniform: Callable[[tuple[int, ...]], Any]):
        self.xp, self.model, self.dtype = xp, model, dtype
        self.optimizer, self.lr, self.dropout, self.uniform = optimizer, lr, dropout, uniform
        self.p = {k: xp.asarray(v, dtype=dtype) for k, v in weights.items()}
        self.t = 0
        if optimizer == "adam":
            self.m = {k: xp.zeros_like(v) for k, v in self.p.items()}
            self.v = {k: xp.zeros_like(v) for k, v in self.p.items()}

    # forward / backward ------------------------------------------------------------------------
    def _forward_mlp(self, x, train: bool):
        xp, p = self.xp, self.p
        h = x @ p["w1"] + p["b1"]
        a = xp.maximum(h, 0)
        mask = None
        if train and self.dropout > 0:
            keep = self.uniform(a.shape) >= self.dropout
            mask = keep.astype(self.dtype) * (1.0 / (1.0 - self.dropout))
            a = a * mask
        logits = a @ p["w2"] + p["b2"]
        return logits, (x, h, a, mask)

    def _backward_mlp(self, dlogits, cache):
        x, h, a, mask = cache
        p = self.p
        g = {"w2": a.T @ dlogits, "b2": dlogits.sum(axis=0)}
        da = dlogits @ p["w2"].T
        if mask is not None:
            da = da * mask
        dh = da * (h > 0)
        g["w1"] = x.T @ dh
        g["b1"] = dh.sum(axis=0)
        return g

    def _conv(self, x, w, b):
        k, c, r, s = w.shape
        _, n, h, wd = x.shape
        cols = _im2col(self.xp, x, r, s)
        out = (w.reshape(k, c * r * s) @ cols).reshape(k, n, h - r + 1, wd - s + 1)
        return out + b[:, None, None, None], cols

    def _forward_cnn(self, x, train: bool):
        xp, p = self.xp, self.p
        n = x.shape[0]
        x0 = x.reshape(n, 1, 28, 28).transpose(1, 0, 2, 3)        # (1, N, 28, 28)
        h1, cols1 = self._conv(x0, p["c1"], p["cb1"])              # (6, N, 24, 24)
        a1 = xp.maximum(h1, 0)
        p1, m1 = _maxpool2(a1)                                     # (6, N, 12, 12)
        h2, cols2 = self._conv(p1, p["c2"], p["cb2"])              # (16, N, 8, 8)
        a2 = xp.maximum(h2, 0)
        p2, m2 = _maxpool2(a2)                                     # (16, N, 4, 4)
        f = p2.transpose(1, 0, 2, 3).reshape(n, -1)                # (N, 256) in (C, H, W) order
        h3 = f @ p["w3"] + p["b3"]
        a3 = xp.maximum(h3, 0)
        logits = a3 @ p["w4"] + p["b4"]
        return logits, (cols1, h1, m1, p1.shape, cols2, h2, m2, f, h3, a3)

    def _backward_cnn(self, dlogits, cache):
        xp, p = self.xp, self.p
        cols1, h1, m1, p1_shape, cols2, h2, m2, f, h3, a3 = cache
        n = dlogits.shape[0]
        g = {"w4": a3.T @ dlogits, "b4": dlogits.sum(axis=0)}
        dh3 = (dlogits @ p["w4"].T) * (h3 > 0)
        g["w3"] = f.T @ dh3
        g["b3"] = dh3.sum(axis=0)
        df = dh3 @ p["w3"].T
        dp2 = df.reshape(n, 16, 4, 4).transpose(1, 0, 2, 3)
        dh2 = _maxpool2_backward(dp2, m2) * (h2 > 0)               # (16, N, 8, 8)
        k2 = p["c2"].shape[0]
        dh2m = dh2.reshape(k2, -1)
        g["c2"] = (dh2m @ cols2.T).reshape(p["c2"].shape)
        g["cb2"] = dh2m.sum(axis=1)
        dp1 = _col2im(xp, p["c2"].reshape(k2, -1).T @ dh2m, p1_shape, 5, 5)
        dh1 = _maxpool2_backward(dp1, m1) * (h1 > 0)               # (6, N, 24, 24)
        k1 = p["c1"].shape[0]
        dh1m = dh1.reshape(k1, -1)
        g["c1"] = (dh1m @ cols1.T).reshape(p["c1"].shape)
        g["cb1"] = dh1m.sum(axis=1)
        return g

    def forward(self, x, train: bool = False):
        """Logits of a batch (and the cache for :meth:`backward`)."""
        return self._forward_mlp(x, train) if self.model == "mlp" else self._forward_cnn(x, train)

    def loss_and_grads(self, x, y):
        """Mean training loss of one batch (a device scalar) and the gradients of every parameter."""
        logits, cache = self.forward(x, train=True)
        loss, dlogits = _softmax_xent(self.xp, logits, y)
        grads = self._backward_mlp(dlogits, cache) if self.model == "mlp" else self._backward_cnn(dlogits, cache)
        return loss, grads

    def apply(self, grads) -> None:
        """One optimizer update, in place."""
        xp, lr = self.xp, self.lr
        if self.optimizer == "sgd":
            for k, g in grads.items():
                self.p[k] -= lr * g
            return
        self.t += 1
        c1 = 1.0 - ADAM_BETA1 ** self.t
        c2 = 1.0 - ADAM_BETA2 ** self.t
        for k, g in grads.items():
            m, v = self.m[k], self.v[k]
            m *= ADAM_BETA1
            m += (1.0 - ADAM_BETA1) * g
            v *= ADAM_BETA2
            v += (1.0 - ADAM_BETA2) * (g * g)
            self.p[k] -= lr * (m / c1) / (xp.sqrt(v / c2) + ADAM_EPS)

    def step(self, x, y):
        """Forward, backward and update on one batch; returns the batch loss (not synchronized)."""
        loss, grads = self.loss_and_grads(x, y)
        self.apply(grads)
        return loss

    def evaluate(self, x, y, chunk: int = 1000) -> tuple[float, float]:
        """Mean loss and accuracy over ``x``/``y`` (no dropout), as host floats."""
        xp = self.xp
        loss_sum, correct = 0.0, 0
        for i in range(0, len(x), chunk):
            logits, _ = self.forward(x[i:i + chunk], train=False)
            yb = y[i:i + chunk]
            loss, _ = _softmax_xent(xp, logits, yb)
            loss_sum += float(loss) * len(yb)
            correct += int((logits.argmax(axis=1) == yb).sum())
        return loss_sum / len(x), correct / len(x)


class ArraySession(TrainingSession):
    """The reference loop as a :class:`TrainingSession` on array module ``xp``.

    The training and evaluation data go to ``xp``'s device once, in ``dtype``; each batch is
    gathered there with the shared per-epoch permutation; the batch losses are summed on the
    device and read once per epoch. ``new_uniform()`` returns a fresh, seeded dropout-uniform
    generator ``uniform(shape)`` at every :meth:`start`, so every run draws the same masks.
    """

    def __init__(self, xp, inputs: dict[str, np.ndarray], params: dict[str, Any], dtype: Any,
                 new_uniform: Callable[[], Callable[[tuple[int, ...]], Any]],
                 sync: Callable[[], None] = lambda: None):
        self.xp, self.params, self.dtype, self.new_uniform, self._sync = xp, params, dtype, new_uniform, sync
        self.weights = weights_of(inputs)
        self.x_train = xp.asarray(inputs["x_train"], dtype=dtype)
        self.y_train = xp.asarray(inputs["y_train"])
        self.x_eval = xp.asarray(inputs["x_eval"], dtype=dtype)
        self.y_eval = xp.asarray(inputs["y_eval"])
        self.order = xp.asarray(inputs["order"])
        self.trainer: Trainer | None = None

    def start(self) -> None:
        p = self.params
        self.trainer = Trainer(self.xp, p["model"], self.weights, self.dtype, p["optimizer"], p["lr"],
                               p["dropout"], self.new_uniform())

    def train_epoch(self, epoch: int) -> float:
        trainer, bs = self.trainer, self.params["batch_size"]
        loss_sum, batches = 0.0, 0
        for i in range(0, len(self.x_train), bs):
            idx = self.order[epoch, i:i + bs]
            loss_sum = loss_sum + trainer.step(self.x_train[idx], self.y_train[idx])
            batches += 1
        return float(loss_sum) / batches  # float() waits for the device

    def evaluate(self) -> tuple[float, float]:
        return self.trainer.evaluate(self.x_eval, self.y_eval)

    def sync(self) -> None:
        self._sync()

    def close(self) -> None:
        self.trainer = None
        self.x_train = self.y_train = self.x_eval = self.y_eval = self.order = None


def numpy_uniform(seed: int) -> Callable[[], Callable[[tuple[int, ...]], np.ndarray]]:
    """Factory of the seeded NumPy dropout-uniform generator (the reference's and the NumPy backend's)."""
    def new():
        rng = np.random.default_rng(seed)
        return lambda shape: rng.random(shape, dtype=np.float32)
    return new

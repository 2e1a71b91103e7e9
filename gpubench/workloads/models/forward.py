"""The inference models' forward passes in NumPy: the float64 reference, and the NumPy backend in float32.

Written out layer by layer with nothing but NumPy (BLAS products), in the dtype of the weights
given: the workload calls them in float64 for its reference, the NumPy backend in the case's dtype.

* ``mlp``, ``cnn``: the MNIST workload's own forward pass (:class:`gpubench.workloads.mnist_reference.Trainer`,
  inference mode), so the two workloads share one definition.
* ``resnet18``: channels-last (N×H×W×C) inside: each convolution is im2col (a strided view of
  the padded input, copied one block of images at a time, at most ``block_bytes`` of columns) and
  one product with the K×(C·R·S) filters; BatchNorm in eval mode is a per-channel scale and
  shift; max-pool and the global average pool are reductions over strided views.
* ``gpt``: token and position embeddings, six pre-LayerNorm blocks (causal attention of 8 heads
  with a max-shifted softmax, a tanh-GELU MLP), the final LayerNorm of the last position and its
  logits against the tied embedding.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gpubench.workloads.models import (
    GPT_HEADS,
    GPT_LAYERS,
    NORM_EPS,
    bn_of,
    conv_out,
    resnet18_layers,
)

#: Largest im2col block (bytes) one convolution allocates at a time.
COLUMN_BLOCK_BYTES = 64 * 2**20


def conv_nhwc(x: np.ndarray, w: np.ndarray, stride: int, pad: int,
              block_bytes: int = COLUMN_BLOCK_BYTES) -> np.ndarray:
    """Cross-correlation of ``x`` (N×H×W×C) with ``w`` (K×C×R×S), zero padding ``pad``: N×P×Q×K, in ``x``'s dtype."""
    n, h, wd, c = x.shape
    k, _, r, s = w.shape
    p, q = conv_out(h, r, stride, pad), conv_out(wd, s, stride, pad)
    wmat = w.reshape(k, c * r * s).T                                   # (C·R·S, K)
    if pad:
        x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    out = np.empty((n, p, q, k), dtype=x.dtype)
    per_image = p * q * c * r * s * x.dtype.itemsize
    nb = max(1, min(n, block_bytes // max(per_image, 1)))
    for n0 in range(0, n, nb):
        windows = np.lib.stride_tricks.sliding_window_view(x[n0:n0 + nb], (r, s), axis=(1, 2))  # N,H',W',C,R,S
        windows = windows[:, : (p - 1) * stride + 1 : stride, : (q - 1) * stride + 1 : stride]
        cols = windows.reshape(-1, c * r * s)                          # a copy: (N·P·Q, C·R·S)
        out[n0:n0 + nb] = (cols @ wmat).reshape(-1, p, q, k)
    return out


def max_pool_nhwc(x: np.ndarray, kernel: int, stride: int, pad: int) -> np.ndarray:
    """Max-pool of N×H×W×C over ``kernel``² windows (padding never wins: it is −∞)."""
    n, h, w, c = x.shape
    p, q = conv_out(h, kernel, stride, pad), conv_out(w, kernel, stride, pad)
    if pad:
        x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), constant_values=-np.inf)
    out = None
    for i in range(kernel):
        for j in range(kernel):
            view = x[:, i: i + (p - 1) * stride + 1: stride, j: j + (q - 1) * stride + 1: stride]
            out = view.copy() if out is None else np.maximum(out, view, out=out)
    return out


def resnet18_forward(w: dict[str, np.ndarray], x: np.ndarray, block_bytes: int = COLUMN_BLOCK_BYTES) -> np.ndarray:
    """ResNet-18 logits (N×1000) of images ``x`` (N×3×224×224, NCHW as torchvision takes them), BatchNorm in eval
    mode, computed in the dtype of ``x`` (the weights are converted to it)."""
    dt = x.dtype

    def conv_bn(h: np.ndarray, name: str, stride: int, pad: int, relu: bool) -> np.ndarray:
        bn = bn_of(name)
        scale = (w[f"{bn}.weight"].astype(dt) / np.sqrt(w[f"{bn}.running_var"].astype(dt) + dt.type(NORM_EPS)))
        shift = w[f"{bn}.bias"].astype(dt) - w[f"{bn}.running_mean"].astype(dt) * scale
        y = conv_nhwc(h, w[f"{name}.weight"].astype(dt), stride, pad, block_bytes)
        y *= scale
        y += shift
        return np.maximum(y, 0, out=y) if relu else y

    layers = {name: (stride, pad) for name, _, _, _, stride, pad in resnet18_layers()}
    h = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    h = conv_bn(h, "conv1", 2, 3, relu=True)
    h = max_pool_nhwc(h, 3, 2, 1)
    for stage in range(1, 5):
        for block in range(2):
            p = f"layer{stage}.{block}"
            stride, _ = layers[f"{p}.conv1"]
            out = conv_bn(h, f"{p}.conv1", stride, 1, relu=True)
            out = conv_bn(out, f"{p}.conv2", 1, 1, relu=False)
            identity = conv_bn(h, f"{p}.downsample.0", stride, 0, relu=False) if f"{p}.downsample.0" in layers else h
            out += identity
            h = np.maximum(out, 0, out=out)
    pooled = h.mean(axis=(1, 2))
    return pooled @ w["fc.weight"].astype(dt).T + w["fc.bias"].astype(dt)


def layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """LayerNorm over the last axis (biased variance, ε 1e-5, as PyTorch)."""
    mean = x.mean(axis=-1, keepdims=True)
    centered = x - mean
    var = (centered * centered).mean(axis=-1, keepdims=True)
    return centered / np.sqrt(var + x.dtype.type(NORM_EPS)) * gamma + beta


def gelu_tanh(x: np.ndarray) -> np.ndarray:
    """GELU, tanh approximation (GPT-2's; PyTorch's ``approximate="tanh"``)."""
    c = x.dtype.type(math.sqrt(2.0 / math.pi))
    return x.dtype.type(0.5) * x * (1 + np.tanh(c * (x + x.dtype.type(0.044715) * x * x * x)))


def gpt_forward(w: dict[str, np.ndarray], tokens: np.ndarray, dtype: Any = np.float64) -> np.ndarray:
    """Next-token logits (N×vocab) of the GPT decoder for ``tokens`` (N×S int), computed in ``dtype``."""
    dt = np.dtype(dtype)

    def p(name: str) -> np.ndarray:
        return w[name].astype(dt, copy=False)

    def dense(h: np.ndarray, name: str) -> np.ndarray:
        # One 2-D product over every position (NumPy's stacked matmul is slower than one BLAS call).
        out = h.reshape(-1, h.shape[-1]) @ p(f"{name}.weight").T + p(f"{name}.bias")
        return out.reshape(*h.shape[:-1], -1)

    n, s = tokens.shape
    d = w["wte"].shape[1]
    heads, dh = GPT_HEADS, d // GPT_HEADS
    x = p("wte")[tokens] + p("wpe")[:s]
    future = np.triu(np.ones((s, s), dtype=bool), k=1)
    scale = dt.type(1.0 / math.sqrt(dh))
    for i in range(GPT_LAYERS):
        b = f"blocks.{i}"
        h = layer_norm(x, p(f"{b}.ln1.weight"), p(f"{b}.ln1.bias"))
        qkv = dense(h, f"{b}.attn.qkv")                                          # N, S, 3D
        q, k, v = (qkv[..., j * d:(j + 1) * d].reshape(n, s, heads, dh).transpose(0, 2, 1, 3) for j in range(3))
        scores = (q @ k.transpose(0, 1, 3, 2)) * scale                             # N, H, S, S
        scores[..., future] = -np.inf
        scores -= scores.max(axis=-1, keepdims=True)
        probs = np.exp(scores)
        probs /= probs.sum(axis=-1, keepdims=True)
        attn = (probs @ v).transpose(0, 2, 1, 3).reshape(n, s, d)
        x = x + dense(attn, f"{b}.attn.proj")
        h = layer_norm(x, p(f"{b}.ln2.weight"), p(f"{b}.ln2.bias"))
        x = x + dense(gelu_tanh(dense(h, f"{b}.mlp.fc")), f"{b}.mlp.proj")
    last = layer_norm(x[:, -1], p("ln_f.weight"), p("ln_f.bias"))
    return last @ p("wte").T


def mnist_forward(model: str, w: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Logits of the MNIST workload's ``mlp`` or ``cnn`` (its own forward pass), in the dtype of ``x``."""
    from gpubench.workloads.mnist_reference import Trainer

    trainer = Trainer(np, model, w, x.dtype, "sgd", 0.0, 0.0, uniform=lambda shape: None)
    logits, _ = trainer.forward(x.reshape(x.shape[0], -1) if model == "mlp" else x, train=False)
    return logits


def forward(model: str, w: dict[str, np.ndarray], x: np.ndarray, dtype: Any = np.float64) -> np.ndarray:
    """The output of ``model`` with weights ``w`` for the batch ``x``, computed in ``dtype`` with NumPy."""
    dt = np.dtype(dtype)
    if model == "gpt":
        return gpt_forward(w, x, dt)
    x = x.astype(dt, copy=False)
    if model in ("mlp", "cnn"):
        return mnist_forward(model, w, x)
    if model == "resnet18":
        return resnet18_forward(w, x)
    raise KeyError(model)

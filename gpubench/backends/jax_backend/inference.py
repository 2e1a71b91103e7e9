"""Model inference in JAX: each model written as a function of its weights and batch, ``jax.jit``-compiled.

Every model of the workload is expressed directly with ``jax.numpy`` and ``jax.lax``, in the
layouts of the shared weights (no conversion of the models through another framework):

* ``mlp``, ``cnn``: the MNIST models (dense ``x·W + b``; ``lax.conv_general_dilated`` in
  NCHW/OIHW; ``lax.reduce_window`` max-pooling), as the JAX MNIST trainer computes them;
* ``resnet18``: torchvision's ResNet-18 in NCHW/OIHW with BatchNorm in eval mode (per-channel
  scale and shift from the running statistics), ``reduce_window`` max-pool, global mean, classifier;
* ``gpt``: embeddings, pre-LayerNorm blocks with causal softmax attention (masked with −∞),
  tanh GELU (``jax.nn.gelu(approximate=True)``), the last position's logits against the tied embedding.

The executable is compiled for the case's exact weights and batch when the case is built
(``jax.jit(f).lower(...).compile()``), outside any timing; float32 products and convolutions run
at ``Precision.HIGHEST`` (no TF32 on GPUs). In 16-bit dtypes LayerNorm's statistics and the
softmax are computed in float32 and cast back, as the other frameworks' kernels do.

Memory: XLA's buffer assignment of the compiled executable (``memory_analysis()``): the
temporaries and the output one call needs beyond its arguments, on the CPU and on a GPU alike.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gpubench.backends.base import BoundOp
from gpubench.backends.jax_backend import DeviceSlot
from gpubench.workloads.inference import case_weights
from gpubench.workloads.models import GPT_HEADS, GPT_LAYERS, NORM_EPS, bn_of, resnet18_layers


def model_function(jax, model: str, precision: Any):
    """``f(weights, x) -> output`` of ``model`` as a plain function for ``jax.jit``."""
    jnp, lax = jax.numpy, jax.lax

    def dense(x, w, b):  # shared (in, out) layout (MNIST models)
        return jnp.matmul(x, w, precision=precision) + b

    def linear(x, w, b=None):  # torch (out, in) layout (GPT)
        y = jnp.matmul(x, w.T, precision=precision)
        return y if b is None else y + b

    def conv(x, w, stride=1, pad=0):
        return lax.conv_general_dilated(x, w, window_strides=(stride, stride), padding=[(pad, pad), (pad, pad)],
                                        dimension_numbers=("NCHW", "OIHW", "NCHW"), precision=precision)

    def max_pool(x, k, stride, pad=0):
        return lax.reduce_window(x, -jnp.inf, lax.max, (1, 1, k, k), (1, 1, stride, stride),
                                 [(0, 0), (0, 0), (pad, pad), (pad, pad)])

    if model == "mlp":
        def f(p, x):
            return dense(jax.nn.relu(dense(x, p["w1"], p["b1"])), p["w2"], p["b2"])
        return f

    if model == "cnn":
        def f(p, x):
            n = x.shape[0]
            h = max_pool(jax.nn.relu(conv(x, p["c1"]) + p["cb1"][None, :, None, None]), 2, 2)
            h = max_pool(jax.nn.relu(conv(h, p["c2"]) + p["cb2"][None, :, None, None]), 2, 2)
            return dense(jax.nn.relu(dense(h.reshape(n, 256), p["w3"], p["b3"])), p["w4"], p["b4"])
        return f

    if model == "resnet18":
        layers = {name: (stride, pad) for name, _, _, _, stride, pad in resnet18_layers()}

        def conv_bn(p, x, name, relu):
            bn = bn_of(name)
            stride, pad = layers[name]
            scale = p[f"{bn}.weight"] / jnp.sqrt(p[f"{bn}.running_var"] + NORM_EPS)
            shift = p[f"{bn}.bias"] - p[f"{bn}.running_mean"] * scale
            y = conv(x, p[f"{name}.weight"], stride, pad) * scale[None, :, None, None] + shift[None, :, None, None]
            return jax.nn.relu(y) if relu else y

        def f(p, x):
            h = max_pool(conv_bn(p, x, "conv1", True), 3, 2, 1)
            for stage in range(1, 5):
                for block in range(2):
                    b = f"layer{stage}.{block}"
                    out = conv_bn(p, conv_bn(p, h, f"{b}.conv1", True), f"{b}.conv2", False)
                    down = f"{b}.downsample.0"
                    h = jax.nn.relu(out + (conv_bn(p, h, down, False) if down in layers else h))
            return linear(h.mean(axis=(2, 3)), p["fc.weight"], p["fc.bias"])
        return f

    if model == "gpt":
        def layer_norm(x, g, b):
            x32 = x.astype(jnp.float32)
            mean = x32.mean(axis=-1, keepdims=True)
            var = ((x32 - mean) ** 2).mean(axis=-1, keepdims=True)
            return ((x32 - mean) / jnp.sqrt(var + NORM_EPS)).astype(x.dtype) * g + b

        def f(p, tokens):
            n, s = tokens.shape
            x = jnp.take(p["wte"], tokens, axis=0) + p["wpe"][:s]
            d = x.shape[-1]
            dh = d // GPT_HEADS
            causal = jnp.tril(jnp.ones((s, s), dtype=bool))
            for i in range(GPT_LAYERS):
                b = f"blocks.{i}"
                qkv = linear(layer_norm(x, p[f"{b}.ln1.weight"], p[f"{b}.ln1.bias"]),
                             p[f"{b}.attn.qkv.weight"], p[f"{b}.attn.qkv.bias"])
                q, k, v = (qkv[..., j * d:(j + 1) * d].reshape(n, s, GPT_HEADS, dh).transpose(0, 2, 1, 3)
                           for j in range(3))
                scores = jnp.matmul(q, k.transpose(0, 1, 3, 2), precision=precision) * (1.0 / math.sqrt(dh))
                scores = jnp.where(causal, scores.astype(jnp.float32), -jnp.inf)
                probs = jax.nn.softmax(scores, axis=-1).astype(x.dtype)
                attn = jnp.matmul(probs, v, precision=precision).transpose(0, 2, 1, 3).reshape(n, s, d)
                x = x + linear(attn, p[f"{b}.attn.proj.weight"], p[f"{b}.attn.proj.bias"])
                h = layer_norm(x, p[f"{b}.ln2.weight"], p[f"{b}.ln2.bias"])
                h = jax.nn.gelu(linear(h, p[f"{b}.mlp.fc.weight"], p[f"{b}.mlp.fc.bias"]), approximate=True)
                x = x + linear(h, p[f"{b}.mlp.proj.weight"], p[f"{b}.mlp.proj.bias"])
            last = layer_norm(x[:, -1], p["ln_f.weight"], p["ln_f.bias"])
            return linear(last, p["wte"])
        return f

    raise KeyError(model)


def memory_metrics(compiled) -> dict[str, Any]:
    """What XLA's buffer assignment says one call needs beyond its arguments (temporaries and output)."""
    try:
        stats = compiled.memory_analysis()
        peak = int(stats.temp_size_in_bytes) + int(stats.output_size_in_bytes)
    except Exception as exc:  # noqa: BLE001 - an optional fact of the PJRT plug-in
        return {"peak_memory_note": f"not available: memory_analysis() failed ({type(exc).__name__})"}
    return {"peak_memory_bytes": peak,
            "memory_method": "XLA buffer assignment (compiled.memory_analysis()): temporaries and output of one call"}


def build(backend, spec, params, inputs, device):
    """Upload the weights and the batch, compile the model for them, bind one call of the executable."""
    model = params["model"]
    weights = {k: backend.upload(np.asarray(v), device, spec.dtype) for k, v in case_weights(inputs).items()}
    x_host = inputs["x"]
    x = DeviceSlot(backend.upload(x_host, device, None if x_host.dtype.kind == "i" else spec.dtype),
                   None if x_host.dtype.kind == "i" else spec.dtype)
    compiled = backend.compile(model_function(backend.jax, model, backend.precision(spec.dtype)), weights, x.value)
    out = DeviceSlot(None)
    keep = backend.keep

    def call():
        out.value = keep(device, compiled(weights, x.value))

    call()  # the executable's first run (allocation, autotuning), outside any timing
    backend.synchronize(device)
    return BoundOp(call=call, result=lambda: backend.download(out), timer=backend.timer(device),
                   device_inputs={"x": x}, device_output=lambda: out.value, metrics=memory_metrics(compiled))

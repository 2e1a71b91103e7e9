"""Model inference in TensorFlow: Keras for the MNIST models, TensorFlow ops for ResNet-18 and the decoder.

* ``mlp``, ``cnn``: the MNIST workload's Keras ``Sequential`` models
  (:func:`gpubench.backends.tensorflow_backend.mnist.make_model`, loaded with
  :func:`~gpubench.backends.tensorflow_backend.mnist.keras_weights`), the CNN channels-last as Keras
  runs it on a CPU (the batch is reordered to N×28×28×1 once, when the case is built);
* ``resnet18``, ``gpt``: written directly with TensorFlow ops (``tf.nn.conv2d`` channels-last —
  TensorFlow's CPU convolution supports NHWC only — with the filters reordered once to HWIO,
  BatchNorm in eval mode as a per-channel scale and shift, ``tf.nn.max_pool2d`` after a −∞ pad;
  the decoder's LayerNorm, causal softmax attention and tanh GELU as in the other backends).

Each model runs as one traced ``tf.function`` (graph mode, as ``model.predict`` runs Keras
models; no XLA), traced when the case is built. TF32 is off, so float32 is checked as float32
(:meth:`TensorflowBackend.case_scope` restores the switch). Peak memory: on a GPU,
``tf.config.experimental.get_memory_info``'s peak during one call beyond what was in use before
it; TensorFlow keeps no such statistics for the CPU.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gpubench.backends.base import BoundOp
from gpubench.workloads.inference import case_weights
from gpubench.workloads.models import GPT_HEADS, GPT_LAYERS, NORM_EPS, bn_of, resnet18_layers


def keras_model(backend, model: str, weights: dict[str, np.ndarray], dtype: str, device_name: str):
    """The MNIST workload's Keras model in ``dtype`` with ``weights``.

    Keras 3 takes a new layer's dtype from its global dtype policy, which follows ``floatx`` only
    until it is first read: both are set for the build and restored after it.
    """
    from gpubench.backends.tensorflow_backend.mnist import keras_weights, make_model

    tf = backend.tf
    keras = tf.keras
    floatx, policy = keras.backend.floatx(), keras.config.dtype_policy()
    keras.backend.set_floatx(dtype)
    keras.config.set_dtype_policy(dtype)
    try:
        with tf.device(device_name):
            net = make_model(keras, model, 0.0, 0)
            net.set_weights([np.asarray(w, dtype=np.float32) for w in keras_weights(model, weights)])
    finally:
        keras.backend.set_floatx(floatx)
        keras.config.set_dtype_policy(policy)
    layer_dtypes = {layer.compute_dtype for layer in net.layers}
    if layer_dtypes != {dtype}:
        raise RuntimeError(f"tensorflow: the Keras model computes in {sorted(layer_dtypes)}, not {dtype}")
    return net


def ops_function(tf, model: str, p: dict[str, Any]):
    """``f(x) -> output`` of ``resnet18`` or ``gpt`` in TensorFlow ops over the device weights ``p``."""
    if model == "resnet18":
        layers = {name: (stride, pad) for name, _, _, _, stride, pad in resnet18_layers()}

        def conv_bn(x, name, relu):
            stride, pad = layers[name]
            bn = bn_of(name)
            scale = p[f"{bn}.weight"] / tf.sqrt(p[f"{bn}.running_var"] + NORM_EPS)
            shift = p[f"{bn}.bias"] - p[f"{bn}.running_mean"] * scale
            y = tf.nn.conv2d(x, p[f"{name}.weight"], [1, stride, stride, 1],
                             [[0, 0], [pad, pad], [pad, pad], [0, 0]]) * scale + shift
            return tf.nn.relu(y) if relu else y

        def f(x):
            h = conv_bn(tf.transpose(x, [0, 2, 3, 1]), "conv1", True)
            h = tf.pad(h, [[0, 0], [1, 1], [1, 1], [0, 0]], constant_values=-math.inf)
            h = tf.nn.max_pool2d(h, 3, 2, "VALID")
            for stage in range(1, 5):
                for block in range(2):
                    b = f"layer{stage}.{block}"
                    out = conv_bn(conv_bn(h, f"{b}.conv1", True), f"{b}.conv2", False)
                    down = f"{b}.downsample.0"
                    h = tf.nn.relu(out + (conv_bn(h, down, False) if down in layers else h))
            return tf.matmul(tf.reduce_mean(h, axis=[1, 2]), p["fc.weight"], transpose_b=True) + p["fc.bias"]
        return f

    def layer_norm(x, g, b):
        x32 = tf.cast(x, tf.float32)
        mean, var = tf.nn.moments(x32, axes=[-1], keepdims=True)
        return tf.cast((x32 - mean) / tf.sqrt(var + NORM_EPS), x.dtype) * g + b

    def linear(x, name):
        return tf.matmul(x, p[f"{name}.weight"], transpose_b=True) + p[f"{name}.bias"]

    def f(tokens):
        n, s = tf.shape(tokens)[0], tokens.shape[1]
        x = tf.gather(p["wte"], tokens) + p["wpe"][:s]
        d = x.shape[-1]
        dh = d // GPT_HEADS
        causal = tf.linalg.band_part(tf.ones((s, s), dtype=tf.bool), -1, 0)
        for i in range(GPT_LAYERS):
            b = f"blocks.{i}"
            qkv = linear(layer_norm(x, p[f"{b}.ln1.weight"], p[f"{b}.ln1.bias"]), f"{b}.attn.qkv")
            q, k, v = (tf.transpose(tf.reshape(qkv[..., j * d:(j + 1) * d], [n, s, GPT_HEADS, dh]), [0, 2, 1, 3])
                       for j in range(3))
            scores = tf.cast(tf.matmul(q, k, transpose_b=True), tf.float32) * (1.0 / math.sqrt(dh))
            scores = tf.where(causal, scores, -math.inf)
            probs = tf.cast(tf.nn.softmax(scores, axis=-1), x.dtype)
            attn = tf.reshape(tf.transpose(tf.matmul(probs, v), [0, 2, 1, 3]), [n, s, d])
            x = x + linear(attn, f"{b}.attn.proj")
            h = layer_norm(x, p[f"{b}.ln2.weight"], p[f"{b}.ln2.bias"])
            x = x + linear(tf.nn.gelu(linear(h, f"{b}.mlp.fc"), approximate=True), f"{b}.mlp.proj")
        last = layer_norm(x[:, -1], p["ln_f.weight"], p["ln_f.bias"])
        return tf.matmul(last, p["wte"], transpose_b=True)
    return f


def _peak(backend, device, fn) -> dict[str, Any]:
    tf = backend.tf
    if device.kind != "cuda":
        fn()
        return {"peak_memory_note": "not available: TensorFlow keeps no memory statistics for the CPU"}
    name = "GPU:" + device.id.split(":")[1]
    backend.synchronize(device)
    tf.config.experimental.reset_memory_stats(name)
    before = tf.config.experimental.get_memory_info(name)["current"]
    fn()
    backend.synchronize(device)
    return {"peak_memory_bytes": int(tf.config.experimental.get_memory_info(name)["peak"] - before),
            "memory_method": "tf.config.experimental.get_memory_info: peak during one call, less what was in use "
                             "before it"}


def build(backend, spec, params, inputs, device):
    """The model on the device, traced once as a ``tf.function`` of the uploaded batch; one call per request."""
    tf = backend.tf
    tf.config.experimental.enable_tensor_float_32_execution(False)
    model, name = params["model"], backend.tf_device(device)
    weights = case_weights(inputs)
    x_host = inputs["x"]
    if model == "cnn":
        x_host = np.ascontiguousarray(x_host.reshape(-1, 28, 28, 1))
    x = backend.upload(x_host, device, None if x_host.dtype.kind == "i" else spec.dtype)
    if model in ("mlp", "cnn"):
        net = keras_model(backend, model, weights, spec.dtype, name)

        def forward(v):
            return net(v, training=False)
    else:
        device_weights = {}
        for key, value in weights.items():
            if value.ndim == 4:  # OIHW → HWIO, TensorFlow's filter layout
                value = value.transpose(2, 3, 1, 0)
            device_weights[key] = backend.upload(np.ascontiguousarray(value), device, spec.dtype)
        forward = ops_function(tf, model, device_weights)

    @tf.function
    def run():
        with tf.device(name):
            return forward(x)

    holder = [run()]  # trace now, outside any timing

    def call():
        holder[0] = run()

    metrics = _peak(backend, device, call)
    metrics["tensorflow_model"] = "keras Sequential" if model in ("mlp", "cnn") else "tf ops"
    return BoundOp(call=call, result=lambda: backend.download(holder[0]), timer=backend.timer(device),
                   metrics=metrics)

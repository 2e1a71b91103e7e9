"""The models of the ``inference`` workload: their shapes, inputs, outputs and FLOPs, framework-free.

Four models, each built from a seed with random weights (nothing is downloaded):

* ``mlp``: the course MLP of the MNIST workload, 784 → 128 ReLU → 10 (dropout is inert at inference);
* ``cnn``: the MNIST workload's LeNet-style CNN, conv 5×5 1→6, ReLU, max-pool 2, conv 5×5 6→16, ReLU,
  max-pool 2, 256 → 120 ReLU → 10, on 1×28×28 images;
* ``resnet18``: ResNet-18 exactly as torchvision defines it (``torchvision.models.resnet18``:
  7×7/2 stem, BatchNorm, 3×3/2 max-pool, four stages of two BasicBlocks with 64, 128, 256 and 512
  channels, global average pool, 1000 classes), on 3×224×224 images, BatchNorm in eval mode;
* ``gpt``: a small GPT-2-style decoder: 6 pre-LayerNorm blocks of width 512 with 8 causal attention
  heads and a 4× MLP (tanh GELU), learned positions, sequence 128, a vocabulary of 8192 with the
  output projection tied to the token embedding. One request is a prefill: 128 tokens in, the
  logits of the next token out (the last position's).

Weights (:mod:`gpubench.workloads.models.weights`) are named and laid out as gpubench's own
definitions name them: the MNIST workload's names for ``mlp`` and ``cnn`` (dense ``(in, out)``,
conv ``(K, C, R, S)``), the PyTorch ``state_dict`` names and layouts for ``resnet18`` (torchvision's
names) and ``gpt`` (dense ``(out, in)``). The float64 NumPy forward passes are in
:mod:`gpubench.workloads.models.forward`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from gpubench.workloads.mnist import FORWARD_FLOPS, SHAPES

#: The GPT decoder's shape.
GPT_LAYERS, GPT_WIDTH, GPT_HEADS, GPT_SEQ, GPT_VOCAB, GPT_MLP = 6, 512, 8, 128, 8192, 4
#: LayerNorm's and BatchNorm's epsilon (PyTorch's default for both).
NORM_EPS = 1e-5

#: ResNet-18's stages: (channels, stride of the first block); two BasicBlocks each (torchvision's ``[2, 2, 2, 2]``).
RESNET18_STAGES = ((64, 1), (128, 2), (256, 2), (512, 2))
RESNET18_BLOCKS = 2
RESNET18_CLASSES = 1000
RESNET18_IMAGE = 224


@dataclass(frozen=True)
class ModelSpec:
    """What the workload needs to know of a model: its per-sample input and output, and its forward FLOPs."""

    name: str
    description: str
    input_shape: tuple[int, ...]
    """Shape of one sample's input (the batch is the leading axis in front of it)."""
    output_shape: tuple[int, ...]
    tokens: bool
    """The input is token ids (int64 in ``[0, vocab)``), not real values."""
    forward_flops: float
    """FLOPs of one sample's forward pass (2 per multiply-add; convolutions as direct convolutions)."""


def conv_out(size: int, kernel: int, stride: int, pad: int) -> int:
    """Output extent of a convolution or pooling window along one axis."""
    return (size + 2 * pad - kernel) // stride + 1


def resnet18_layers() -> Iterator[tuple[str, int, int, int, int, int]]:
    """ResNet-18's convolutions in order: ``(name, in_channels, out_channels, kernel, stride, padding)``.

    The names are torchvision's (``conv1``, ``layer2.0.conv1``, ``layer2.0.downsample.0``); each
    convolution is followed by the BatchNorm torchvision pairs it with (``bn1``, ``layer2.0.bn1``,
    ``layer2.0.downsample.1``).
    """
    yield "conv1", 3, 64, 7, 2, 3
    inplanes = 64
    for stage, (planes, stride) in enumerate(RESNET18_STAGES, start=1):
        for block in range(RESNET18_BLOCKS):
            s = stride if block == 0 else 1
            prefix = f"layer{stage}.{block}"
            yield f"{prefix}.conv1", inplanes, planes, 3, s, 1
            yield f"{prefix}.conv2", planes, planes, 3, 1, 1
            if block == 0 and (s != 1 or inplanes != planes):
                yield f"{prefix}.downsample.0", inplanes, planes, 1, s, 0
            inplanes = planes


def bn_of(conv: str) -> str:
    """The BatchNorm torchvision pairs with a convolution (``conv1``: ``bn1``, ``downsample.0``: ``downsample.1``)."""
    if conv.endswith("downsample.0"):
        return conv[:-1] + "1"
    head, _, tail = conv.rpartition("conv")
    return f"{head}bn{tail}"


def resnet18_shapes() -> dict[str, tuple[int, ...]]:
    """Every parameter and BatchNorm buffer of ResNet-18 with its shape, named as torchvision's ``state_dict``
    (without the ``num_batches_tracked`` counters, which eval mode never reads)."""
    out: dict[str, tuple[int, ...]] = {}
    for name, cin, cout, k, _, _ in resnet18_layers():
        out[f"{name}.weight"] = (cout, cin, k, k)
        bn = bn_of(name)
        for field in ("weight", "bias", "running_mean", "running_var"):
            out[f"{bn}.{field}"] = (cout,)
    out["fc.weight"] = (RESNET18_CLASSES, 512)
    out["fc.bias"] = (RESNET18_CLASSES,)
    return out


def resnet18_flops() -> float:
    """Forward FLOPs of one 224×224 image: every convolution and the classifier (2 per multiply-add)."""
    macs = 0
    block_in = RESNET18_IMAGE      # spatial size entering the current block (or the stem)
    block_out = block_in
    for name, cin, cout, k, stride, pad in resnet18_layers():
        if name == "conv1":
            out = conv_out(block_in, k, stride, pad)
            block_in = block_out = conv_out(out, 3, 2, 1)  # the stem's 3×3/2 max-pool: 112 → 56
        elif name.endswith("conv1"):
            block_in = block_out
            out = block_out = conv_out(block_in, k, stride, pad)
        elif name.endswith("conv2"):
            out = block_out
        else:  # downsample.0: 1×1/stride on the block's input, to the block's output size
            out = conv_out(block_in, k, stride, pad)
        macs += cin * cout * k * k * out * out
    macs += 512 * RESNET18_CLASSES
    return 2.0 * macs


def gpt_shapes() -> dict[str, tuple[int, ...]]:
    """Every parameter of the GPT decoder with its shape (PyTorch names and layouts: dense ``(out, in)``)."""
    d, f = GPT_WIDTH, GPT_MLP * GPT_WIDTH
    out: dict[str, tuple[int, ...]] = {"wte": (GPT_VOCAB, d), "wpe": (GPT_SEQ, d)}
    for i in range(GPT_LAYERS):
        p = f"blocks.{i}"
        out.update({f"{p}.ln1.weight": (d,), f"{p}.ln1.bias": (d,),
                    f"{p}.attn.qkv.weight": (3 * d, d), f"{p}.attn.qkv.bias": (3 * d,),
                    f"{p}.attn.proj.weight": (d, d), f"{p}.attn.proj.bias": (d,),
                    f"{p}.ln2.weight": (d,), f"{p}.ln2.bias": (d,),
                    f"{p}.mlp.fc.weight": (f, d), f"{p}.mlp.fc.bias": (f,),
                    f"{p}.mlp.proj.weight": (d, f), f"{p}.mlp.proj.bias": (d,)})
    out.update({"ln_f.weight": (d,), "ln_f.bias": (d,)})
    return out


def gpt_flops() -> float:
    """Forward FLOPs of one 128-token prefill: the dense layers of every position, attention's two products
    (counted in full, causal or not, as the attention workload does), and the last position's logits."""
    d, s = GPT_WIDTH, GPT_SEQ
    dense = d * 3 * d + d * d + 2 * d * GPT_MLP * d           # per token per layer
    attention = 2 * s * d                                    # Q·Kᵀ and P·V, per token per layer
    return 2.0 * (GPT_LAYERS * s * (dense + attention) + d * GPT_VOCAB)


MODELS: dict[str, ModelSpec] = {
    "mlp": ModelSpec("mlp", "the course MLP (784 → 128 → 10)", (784,), (10,), False, float(FORWARD_FLOPS["mlp"])),
    "cnn": ModelSpec("cnn", "LeNet-style CNN on 28×28", (1, 28, 28), (10,), False, float(FORWARD_FLOPS["cnn"])),
    "resnet18": ModelSpec("resnet18", "ResNet-18 (torchvision's definition) on 224×224",
                          (3, RESNET18_IMAGE, RESNET18_IMAGE), (RESNET18_CLASSES,), False, resnet18_flops()),
    "gpt": ModelSpec("gpt", f"GPT-style decoder ({GPT_LAYERS} layers, width {GPT_WIDTH}, {GPT_HEADS} heads, "
                            f"sequence {GPT_SEQ})", (GPT_SEQ,), (GPT_VOCAB,), True, gpt_flops()),
}


def shapes(model: str) -> dict[str, tuple[int, ...]]:
    """Every weight of ``model`` with its shape, in the model's own naming and layout."""
    if model in SHAPES:
        return dict(SHAPES[model])
    if model == "resnet18":
        return resnet18_shapes()
    if model == "gpt":
        return gpt_shapes()
    raise KeyError(model)


def parameter_count(model: str) -> int:
    """Number of weights of ``model`` (BatchNorm's running statistics included)."""
    total = 0
    for shape in shapes(model).values():
        n = 1
        for extent in shape:
            n *= extent
        total += n
    return total

"""The inference models as ``torch.nn`` modules, loaded with the workload's shared weights (torch imported lazily).

* ``mlp``, ``cnn``: the MNIST workload's torch models (:func:`gpubench.backends.torch_backend.mnist.make_model`).
* ``resnet18``: torchvision's ResNet-18, written out here exactly as ``torchvision.models.resnet``
  defines it (``BasicBlock`` with its ``conv3x3`` / ``conv1x1`` helpers, ``_make_layer``'s
  downsample, the same attribute names, so the ``state_dict`` is torchvision's), because
  torchvision's wheels are built against one torch version and often fail to import beside
  another. A test checks the parameter shapes against ``torchvision.models.resnet18`` where
  torchvision imports.
* ``gpt``: the decoder of :mod:`gpubench.workloads.models` (pre-LayerNorm blocks,
  ``F.scaled_dot_product_attention`` with ``is_causal``, tanh GELU, tied output projection).

The ONNX Runtime backend exports these same modules with ``torch.onnx``.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from gpubench.workloads.models import GPT_HEADS, GPT_LAYERS, GPT_MLP, GPT_SEQ, GPT_VOCAB, GPT_WIDTH, NORM_EPS


@functools.lru_cache(maxsize=1)
def _classes(torch) -> dict[str, Any]:
    """The module classes, defined once torch is imported."""
    nn = torch.nn
    functional = torch.nn.functional

    def conv3x3(in_planes: int, out_planes: int, stride: int = 1):
        return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, groups=1, bias=False,
                         dilation=1)

    def conv1x1(in_planes: int, out_planes: int, stride: int = 1):
        return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)

    class BasicBlock(nn.Module):
        """torchvision's ``BasicBlock``: two 3×3 convolutions with BatchNorm, a residual connection."""

        expansion = 1

        def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None):
            super().__init__()
            self.conv1 = conv3x3(inplanes, planes, stride)
            self.bn1 = nn.BatchNorm2d(planes)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = conv3x3(planes, planes)
            self.bn2 = nn.BatchNorm2d(planes)
            self.downsample = downsample
            self.stride = stride

        def forward(self, x):
            identity = x
            out = self.conv1(x)
            out = self.bn1(out)
            out = self.relu(out)
            out = self.conv2(out)
            out = self.bn2(out)
            if self.downsample is not None:
                identity = self.downsample(x)
            out += identity
            out = self.relu(out)
            return out

    class ResNet(nn.Module):
        """torchvision's ``ResNet`` (no groups, no dilation, BatchNorm2d)."""

        def __init__(self, layers: list[int], num_classes: int = 1000):
            super().__init__()
            self.inplanes = 64
            self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
            self.bn1 = nn.BatchNorm2d(self.inplanes)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
            self.layer1 = self._make_layer(64, layers[0])
            self.layer2 = self._make_layer(128, layers[1], stride=2)
            self.layer3 = self._make_layer(256, layers[2], stride=2)
            self.layer4 = self._make_layer(512, layers[3], stride=2)
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(512 * BasicBlock.expansion, num_classes)

        def _make_layer(self, planes: int, blocks: int, stride: int = 1):
            downsample = None
            if stride != 1 or self.inplanes != planes * BasicBlock.expansion:
                downsample = nn.Sequential(conv1x1(self.inplanes, planes * BasicBlock.expansion, stride),
                                           nn.BatchNorm2d(planes * BasicBlock.expansion))
            layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
            self.inplanes = planes * BasicBlock.expansion
            for _ in range(1, blocks):
                layers.append(BasicBlock(self.inplanes, planes))
            return nn.Sequential(*layers)

        def forward(self, x):
            x = self.conv1(x)
            x = self.bn1(x)
            x = self.relu(x)
            x = self.maxpool(x)
            x = self.layer1(x)
            x = self.layer2(x)
            x = self.layer3(x)
            x = self.layer4(x)
            x = self.avgpool(x)
            x = torch.flatten(x, 1)
            return self.fc(x)

    class Attention(nn.Module):
        """Causal multi-head self-attention: one fused Q, K, V projection, SDPA, an output projection."""

        def __init__(self, width: int, heads: int):
            super().__init__()
            self.heads = heads
            self.qkv = nn.Linear(width, 3 * width)
            self.proj = nn.Linear(width, width)

        def forward(self, x):
            b, s, d = x.shape
            q, k, v = self.qkv(x).split(d, dim=-1)
            q, k, v = (t.view(b, s, self.heads, d // self.heads).transpose(1, 2) for t in (q, k, v))
            out = functional.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.proj(out.transpose(1, 2).reshape(b, s, d))

    class Mlp(nn.Module):
        def __init__(self, width: int, hidden: int):
            super().__init__()
            self.fc = nn.Linear(width, hidden)
            self.act = nn.GELU(approximate="tanh")
            self.proj = nn.Linear(hidden, width)

        def forward(self, x):
            return self.proj(self.act(self.fc(x)))

    class Block(nn.Module):
        def __init__(self, width: int, heads: int):
            super().__init__()
            self.ln1 = nn.LayerNorm(width, eps=NORM_EPS)
            self.attn = Attention(width, heads)
            self.ln2 = nn.LayerNorm(width, eps=NORM_EPS)
            self.mlp = Mlp(width, GPT_MLP * width)

        def forward(self, x):
            x = x + self.attn(self.ln1(x))
            return x + self.mlp(self.ln2(x))

    class Gpt(nn.Module):
        """The GPT decoder: embeddings, pre-LayerNorm blocks, the last position's logits (tied embedding)."""

        def __init__(self):
            super().__init__()
            self.wte = nn.Parameter(torch.empty(GPT_VOCAB, GPT_WIDTH))
            self.wpe = nn.Parameter(torch.empty(GPT_SEQ, GPT_WIDTH))
            self.blocks = nn.ModuleList(Block(GPT_WIDTH, GPT_HEADS) for _ in range(GPT_LAYERS))
            self.ln_f = nn.LayerNorm(GPT_WIDTH, eps=NORM_EPS)

        def forward(self, tokens):
            x = functional.embedding(tokens, self.wte) + self.wpe[: tokens.shape[1]]
            for block in self.blocks:
                x = block(x)
            return functional.linear(self.ln_f(x[:, -1]), self.wte)

    return {"BasicBlock": BasicBlock, "ResNet": ResNet, "Gpt": Gpt}


def resnet18(torch):
    """An untrained torchvision-identical ResNet-18 (``ResNet(BasicBlock, [2, 2, 2, 2])``)."""
    return _classes(torch)["ResNet"]([2, 2, 2, 2])


def load_state(torch, net, weights: dict[str, np.ndarray]) -> None:
    """Copy the shared weights into ``net`` by ``state_dict`` name; every parameter and buffer must be given
    (except BatchNorm's ``num_batches_tracked`` counters, which eval mode never reads)."""
    state = net.state_dict()
    missing = [k for k in state if k not in weights and not k.endswith("num_batches_tracked")]
    unknown = [k for k in weights if k not in state]
    if missing or unknown:
        raise ValueError(f"weights do not match the module: missing {missing[:3]}, unknown {unknown[:3]}")
    with torch.no_grad():
        for name, value in weights.items():
            target = state[name]
            if tuple(target.shape) != value.shape:
                raise ValueError(f"weight {name}: shape {value.shape}, the module has {tuple(target.shape)}")
            target.copy_(torch.from_numpy(np.array(value, dtype=np.float32)))


def build_net(torch, model: str, weights: dict[str, np.ndarray]):
    """The ``model`` as an eval-mode float32 CPU module holding ``weights``, with no parameter requiring grad."""
    if model in ("mlp", "cnn"):
        from gpubench.backends.torch_backend.mnist import make_model

        net = make_model(torch, model, {k: np.array(v) for k, v in weights.items()}, 0.0, torch.float32, "cpu")
    else:
        net = resnet18(torch) if model == "resnet18" else _classes(torch)["Gpt"]()
        load_state(torch, net, weights)
    net.eval()
    net.requires_grad_(False)
    return net

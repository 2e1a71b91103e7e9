"""The inference models as ``torch.nn`` modules, loaded with the workload's shared weights (torch imported lazily).

* ``mlp``, ``cnn``: the MNIST workload's torch models (:func:`gpubench.backends.torch_backend.mnist.make_model`).
* ``resnet18``: torchvision's ResNet-18 as :mod:`gpubench.workloads.torch_nets` defines it for every
  workload (the same attribute names, so the ``state_dict`` is torchvision's), because torchvision's
  wheels are built against one torch version and often fail to import beside another. A test checks
  the parameter shapes against ``torchvision.models.resnet18`` where torchvision imports.
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

    return {"Gpt": Gpt}


def resnet18(torch):
    """An untrained torchvision-identical ResNet-18, 1,000 classes (:func:`gpubench.workloads.torch_nets.resnet18`)."""
    from gpubench.workloads import torch_nets

    return torch_nets.resnet18(torch, 1000)


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

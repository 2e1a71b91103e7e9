"""Shapes and FLOP counts of the training models of the input-pipeline and data-parallel workloads.

Framework-free: the models themselves are :mod:`gpubench.workloads.torch_nets`; this module only
counts. FLOPs are 2 × multiply-adds of convolutions and dense layers (pooling, normalization and
activations are left out, as is usual); a training step costs about three forward passes (the
forward, and the backward's two products per layer).

* ``cnn``: the MNIST workload's LeNet-style CNN on ``(1, 28, 28)`` digits;
* ``small``: a small all-convolutional image classifier on ``(3, S, S)`` pictures: three
  stride-2 ``3 × 3`` convolutions (16, 32, 64 channels) with ReLU, global average pooling, one dense layer;
* ``resnet18``: torchvision's ResNet-18 (``BasicBlock``, layers ``[2, 2, 2, 2]``, batch normalization)
  on ``(3, S, S)`` pictures (1.82 G multiply-adds at 224 × 224 with 1,000 classes).
"""

from __future__ import annotations

#: Models by the input they take: ``cnn`` reads MNIST digits, the others RGB pictures.
DIGIT_MODELS = ("cnn",)
IMAGE_MODELS = ("small", "resnet18")
TRAIN_FORWARDS = 3.0


def _conv(h: int, cin: int, cout: int, k: int, stride: int, pad: int) -> tuple[float, int]:
    """(FLOPs, output side) of a square ``k × k`` convolution on an ``h × h`` input."""
    out = (h + 2 * pad - k) // stride + 1
    return 2.0 * out * out * cout * cin * k * k, out


def resnet18_forward_flops(size: int, classes: int) -> float:
    """Forward FLOPs of torchvision's ResNet-18 on one ``(3, size, size)`` picture."""
    flops, h = _conv(size, 3, 64, 7, 2, 3)
    h = (h + 2 - 3) // 2 + 1  # max pool 3×3, stride 2, padding 1
    cin = 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        for block in range(2):
            s = stride if block == 0 else 1
            f1, h1 = _conv(h, cin, cout, 3, s, 1)
            f2, _ = _conv(h1, cout, cout, 3, 1, 1)
            flops += f1 + f2
            if s != 1 or cin != cout:
                flops += _conv(h, cin, cout, 1, s, 0)[0]  # the downsample branch
            h, cin = h1, cout
    return flops + 2.0 * 512 * classes


def small_forward_flops(size: int, classes: int) -> float:
    """Forward FLOPs of the ``small`` image classifier on one ``(3, size, size)`` picture."""
    flops, h, cin = 0.0, size, 3
    for cout in (16, 32, 64):
        f, h = _conv(h, cin, cout, 3, 2, 1)
        flops, cin = flops + f, cout
    return flops + 2.0 * 64 * classes


def cnn_forward_flops() -> float:
    """Forward FLOPs of the MNIST LeNet-style CNN on one digit."""
    from gpubench.workloads.mnist import FORWARD_FLOPS

    return float(FORWARD_FLOPS["cnn"])


def forward_flops(model: str, size: int, classes: int) -> float:
    """Forward FLOPs of ``model`` on one sample of side ``size``."""
    if model == "cnn":
        return cnn_forward_flops()
    if model == "small":
        return small_forward_flops(size, classes)
    if model == "resnet18":
        return resnet18_forward_flops(size, classes)
    raise ValueError(f"unknown model {model!r}")


def train_step_flops(model: str, size: int, classes: int, batch: int) -> float:
    """FLOPs of one training step on ``batch`` samples (three forward passes each)."""
    return TRAIN_FORWARDS * forward_flops(model, size, classes) * batch

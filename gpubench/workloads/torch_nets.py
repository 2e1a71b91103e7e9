"""The training models of the input-pipeline and data-parallel workloads, as torch modules.

They belong to the workloads (as the MNIST workload's shapes do): every torch op module builds them
from here, and ``ddp_training``'s float64 single-process reference trains them on the CPU. The torch
module is passed in, never imported here. Their FLOP counts are in :mod:`gpubench.workloads.nets`.

``resnet18`` is torchvision's ResNet-18 (``BasicBlock``, layers ``[2, 2, 2, 2]``, batch normalization,
the same initialization), defined here so that no torchvision (whose PyPI wheels pin one torch
release each) is needed.
"""

from __future__ import annotations

from typing import Any


def lenet(torch: Any) -> Any:
    """The MNIST workload's LeNet-style CNN (``(1, 28, 28)`` → 10 classes)."""
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(256, 120), nn.ReLU(), nn.Linear(120, 10))


def small(torch: Any, classes: int) -> Any:
    """Three stride-2 ``3 × 3`` convolutions (16, 32, 64 channels), global average pooling, one dense layer."""
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(),
                         nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(64, classes))


def resnet18(torch: Any, classes: int) -> Any:
    """torchvision's ``resnet18(num_classes=classes)``: the same layers, names and initialization."""
    nn = torch.nn

    class BasicBlock(nn.Module):
        expansion = 1

        def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Any = None):
            super().__init__()
            self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.downsample = downsample
            self.stride = stride

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return self.relu(out + identity)

    class ResNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.inplanes = 64
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            self.layer1 = self._layer(64, 2)
            self.layer2 = self._layer(128, 2, 2)
            self.layer3 = self._layer(256, 2, 2)
            self.layer4 = self._layer(512, 2, 2)
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(512, classes)
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.constant_(m.weight, 1)
                    nn.init.constant_(m.bias, 0)

        def _layer(self, planes: int, blocks: int, stride: int = 1):
            downsample = None
            if stride != 1 or self.inplanes != planes:
                downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, stride, bias=False),
                                           nn.BatchNorm2d(planes))
            layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
            self.inplanes = planes
            layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
            return nn.Sequential(*layers)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    return ResNet()


def build(torch: Any, model: str, classes: int) -> Any:
    """The named model (``cnn``, ``small``, ``resnet18``), freshly initialized from torch's generator."""
    if model == "cnn":
        return lenet(torch)
    if model == "small":
        return small(torch, classes)
    if model == "resnet18":
        return resnet18(torch, classes)
    raise ValueError(f"unknown model {model!r}")

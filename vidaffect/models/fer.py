"""Face-expression architectures for small grayscale face crops (FER-2013: 48x48, 1 channel).

All models map ``(B, C, H, W)`` float32 normalised pixels to ``(B, num_classes)`` logits and
accept any input of at least 32x32 (global pooling before the classifier head).

* ``lenet5``: LeCun et al., "Gradient-based learning applied to document recognition", 1998.
  Two 5x5 convolutions and three fully connected layers; the baseline.
* ``alexnet``: Krizhevsky et al., "ImageNet Classification with Deep Convolutional Neural
  Networks", NeurIPS 2012. Five convolutions and three fully connected layers, kept in the
  paper's order (max-pool after conv1, conv2 and conv5, dropout before the two hidden FC
  layers). Adapted to 48x48 faces: conv1 is 5x5 at stride 1 (the paper's is 11x11 at stride 4
  on 224x224 images), narrower layers, batch norm in place of local response normalisation.
* ``resnet18`` / ``resnet34``: He et al., "Deep Residual Learning for Image Recognition",
  CVPR 2016, with BasicBlocks [2, 2, 2, 2] / [3, 4, 6, 3]. Adapted to small inputs: a 3x3 stem
  and no stem max-pool, so a 48x48 face keeps 24x24 feature maps in the first stage. With
  ``deep_stem`` a stride-1 3x3 conv at full resolution comes before the strided one: two 3x3
  convs, a shorter variant of the three-conv deep stem (ResNet-C) of He et al., "Bag of Tricks
  for Image Classification with CNNs", CVPR 2019.
"""

from __future__ import annotations

import torch
from torch import nn

from vidaffect.models.registry import register_model


def _init_weights(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):  # PyTorch's default (Kaiming-uniform) weights
            nn.init.zeros_(m.bias)


class LeNet5(nn.Module):
    """LeNet-5 with ReLU and max-pool; ``(B, C, H, W)`` -> ``(B, num_classes)`` logits."""

    def __init__(self, num_classes: int = 7, in_channels: int = 1) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(5),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120),
            nn.ReLU(inplace=True),
            nn.Linear(120, 84),
            nn.ReLU(inplace=True),
            nn.Linear(84, num_classes),
        )
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    ]


class AlexNet(nn.Module):
    """AlexNet (5 conv + 3 FC) adapted to 48x48 face crops.

    Feature maps for a 48x48 input: conv1 48x48 -> pool 24x24 -> conv2 -> pool 12x12 ->
    conv3..conv5 -> pool 6x6 -> adaptive average pool 3x3 -> FC ``hidden`` -> FC ``hidden`` ->
    FC ``num_classes``.
    """

    def __init__(
        self,
        num_classes: int = 7,
        in_channels: int = 1,
        widths: tuple[int, int, int, int, int] = (64, 128, 256, 256, 256),
        hidden: int = 512,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        w1, w2, w3, w4, w5 = widths
        self.features = nn.Sequential(
            *_conv_bn(in_channels, w1, 5),
            nn.MaxPool2d(3, stride=2, padding=1),
            *_conv_bn(w1, w2, 5),
            nn.MaxPool2d(3, stride=2, padding=1),
            *_conv_bn(w2, w3, 3),
            *_conv_bn(w3, w4, 3),
            *_conv_bn(w4, w5, 3),
            nn.MaxPool2d(3, stride=2, padding=1),
            nn.AdaptiveAvgPool2d(3),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(w5 * 9, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class VGG(nn.Module):
    """A VGG variant for 48x48 faces, after Khaireddin & Chen, "Facial Emotion Recognition:
    State of the Art Performance on FER2013" (arXiv:2105.03588, 2021; 73.3% test top-1 on
    FER-2013 without extra data): four stages of two 3x3 conv-BN-ReLU and a 2x2 max pool
    (48 -> 24 -> 12 -> 6 -> 3), then global average pooling (``pool="avg"``, a small head) or
    the flattened 3x3 map (``"flatten"``, the paper's), a hidden FC layer and the classes.

    About 4.9 M parameters and 0.47 G multiply-adds per face with the defaults.
    """

    def __init__(
        self,
        num_classes: int = 7,
        in_channels: int = 1,
        widths: tuple[int, int, int, int] = (64, 128, 256, 512),
        hidden: int = 512,
        dropout: float = 0.3,
        pool: str = "avg",
    ) -> None:
        super().__init__()
        if pool not in ("avg", "flatten"):
            raise ValueError(f"pool must be 'avg' or 'flatten', got {pool!r}")
        layers: list[nn.Module] = []
        cin = in_channels
        for w in widths:
            layers += [*_conv_bn(cin, w, 3), *_conv_bn(w, w, 3), nn.MaxPool2d(2)]
            cin = w
        self.features = nn.Sequential(*layers)
        flat = cin if pool == "avg" else cin * 9
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d(1) if pool == "avg" else nn.AdaptiveAvgPool2d(3),
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(flat, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 projection) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """ResNet with BasicBlocks for small inputs.

    Stem: 3x3 conv with stride ``stem_stride`` (no max-pool); with ``deep_stem`` it is preceded
    by a stride-1 3x3 conv of ``width // 2`` channels, so the first layers see the face at full
    resolution. Stages of ``width * (1, 2, 4, 8)`` channels, strides (1, 2, 2, 2). For a 48x48
    input and ``stem_stride=2``: 24 -> 12 -> 6 -> 3.
    """

    def __init__(
        self,
        blocks: tuple[int, int, int, int],
        num_classes: int = 7,
        in_channels: int = 1,
        width: int = 64,
        stem_stride: int = 2,
        dropout: float = 0.2,
        deep_stem: bool = False,
    ) -> None:
        super().__init__()
        # Built even when the deep stem replaces it: its init draws from the RNG, and the seeded
        # deep-stem runs (the shipped default) were trained with that draw order.
        stem = _conv_bn(in_channels, width, 3, stride=stem_stride)
        if deep_stem:
            stem = _conv_bn(in_channels, width // 2, 3) + _conv_bn(width // 2, width, 3, stride=stem_stride)
        self.stem = nn.Sequential(*stem)
        stages: list[nn.Module] = []
        cin = width
        for i, n in enumerate(blocks):
            cout = width * 2**i
            for j in range(n):
                stages.append(BasicBlock(cin, cout, stride=2 if (i > 0 and j == 0) else 1))
                cin = cout
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(cin, num_classes)
        )
        _init_weights(self)
        for m in self.modules():  # zero-init the last BN of each block (Goyal et al. 2017)
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))


@register_model("lenet5")
def lenet5(num_classes: int = 7, in_channels: int = 1) -> nn.Module:
    """LeNet-5 baseline (about 60k parameters)."""
    return LeNet5(num_classes, in_channels)


@register_model("alexnet")
def alexnet(num_classes: int = 7, in_channels: int = 1, **kwargs: object) -> nn.Module:
    """AlexNet adapted to 48x48 faces (about 3.1M parameters with the defaults)."""
    return AlexNet(num_classes, in_channels, **kwargs)  # type: ignore[arg-type]


@register_model("resnet18")
def resnet18(num_classes: int = 7, in_channels: int = 1, **kwargs: object) -> nn.Module:
    """ResNet-18 for small inputs (blocks 2-2-2-2)."""
    return ResNet((2, 2, 2, 2), num_classes, in_channels, **kwargs)  # type: ignore[arg-type]


@register_model("resnet34")
def resnet34(num_classes: int = 7, in_channels: int = 1, **kwargs: object) -> nn.Module:
    """ResNet-34 for small inputs (blocks 3-4-6-3)."""
    return ResNet((3, 4, 6, 3), num_classes, in_channels, **kwargs)  # type: ignore[arg-type]


@register_model("vgg")
def vgg(num_classes: int = 7, in_channels: int = 1, **kwargs: object) -> nn.Module:
    """The VGG variant of Khaireddin & Chen 2021 for 48x48 faces (the ``accurate`` recipe)."""
    return VGG(num_classes, in_channels, **kwargs)  # type: ignore[arg-type]

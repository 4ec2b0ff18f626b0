"""The EMOTIC context model: a body branch and a context branch, fused, two heads.

Kosti, Alvarez, Recasens, Lapedriza, "Context Based Emotion Recognition using EMOTIC
Dataset", IEEE TPAMI 2019: for each person, the body crop and the whole image (the context)
pass through two CNNs; their globally pooled features are concatenated, fused by a fully
connected layer (256 units, batch norm, ReLU, dropout) and read out by two heads: 26 logits,
one per discrete category (multilabel, :data:`~vidaffect.models.emotic_labels.CATEGORIES`
order), and valence, arousal, dominance.

Inputs: ``body`` float32 ``(B, 3, Hb, Wb)`` and ``context`` float32 ``(B, 3, Hc, Wc)``, RGB,
normalised with the checkpoint's mean/std (128x128 and 224x224 in the usual preprocessing; the
AlexNet branch needs at least :data:`MIN_SIDE` ``["alexnet"]`` = 63 pixels per side). Outputs: ``(logits, vad)``: float32 ``(B, 26)`` logits (sigmoid gives
per-category probabilities) and float32 ``(B, 3)`` valence, arousal, dominance on EMOTIC's
1-10 scale, ``5.5 + 4.5 * tanh(z)`` so always inside it.

Backbones (torchvision architectures, randomly initialised: nothing is downloaded):

* ``alexnet``: Krizhevsky et al., NeurIPS 2012, the convolutional part (5 conv layers, 256
  channels out); the seed project's backbone.
* ``resnet18``: He et al., CVPR 2016, up to the last stage (512 channels out).
"""

from __future__ import annotations

import torch
import torchvision
from torch import nn

from vidaffect.models.emotic_labels import CATEGORIES, VAD, VAD_RANGE
from vidaffect.models.registry import register_model

BACKBONES = ("alexnet", "resnet18")
#: Smallest input side each backbone accepts (AlexNet's 11x11 stride-4 stem and three max-pools).
MIN_SIDE = {"alexnet": 63, "resnet18": 1}


def backbone(name: str) -> tuple[nn.Module, int]:
    """A feature extractor ``(B, 3, H, W) -> (B, C)`` (global average pooled) and its ``C``.

    Raises:
        ValueError: ``name`` is not one of :data:`BACKBONES`.
    """
    if name == "alexnet":
        net = torchvision.models.alexnet(weights=None)
        return nn.Sequential(net.features, nn.AdaptiveAvgPool2d(1), nn.Flatten()), 256
    if name == "resnet18":
        net = torchvision.models.resnet18(weights=None)
        net.fc = nn.Identity()  # resnet's own global average pool stays
        return net, 512
    raise ValueError(f"unknown EMOTIC backbone {name!r}; choose from {', '.join(BACKBONES)}")


class EmoticNet(nn.Module):
    """Two-branch body + context model (see the module docstring for shapes).

    Raises:
        ValueError: ``in_channels`` is not 3, or an unknown backbone.
    """

    def __init__(
        self,
        num_classes: int = len(CATEGORIES),
        in_channels: int = 3,
        backbone_name: str = "resnet18",
        context_backbone: str | None = None,
        fusion: int = 256,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if in_channels != 3:
            raise ValueError(f"EMOTIC models take RGB input (in_channels=3), got {in_channels}")
        self.body, body_dim = backbone(backbone_name)
        self.context, context_dim = backbone(context_backbone or backbone_name)
        self.fuse = nn.Sequential(
            nn.Linear(body_dim + context_dim, fusion),
            nn.BatchNorm1d(fusion),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
        )
        self.categories = nn.Linear(fusion, num_classes)
        self.vad = nn.Linear(fusion, len(VAD))
        self._vad_mid = (VAD_RANGE[0] + VAD_RANGE[1]) / 2
        self._vad_half = (VAD_RANGE[1] - VAD_RANGE[0]) / 2

    def encode_context(self, context: torch.Tensor) -> torch.Tensor:
        """Context features float32 ``(B, C)``: computed once per frame, shared by its persons."""
        return self.context(context)

    def heads(self, body: torch.Tensor, context_features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits, vad)`` for body crops and their (already encoded) context features."""
        z = self.fuse(torch.cat([self.body(body), context_features], dim=1))
        return self.categories(z), self._vad_mid + self._vad_half * torch.tanh(self.vad(z))

    def forward(self, body: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.heads(body, self.encode_context(context))


@register_model("emotic", inputs=("body", "context"))
def emotic(
    num_classes: int = len(CATEGORIES),
    in_channels: int = 3,
    backbone: str = "resnet18",
    context_backbone: str | None = None,
    **kwargs: object,
) -> nn.Module:
    """EMOTIC body + context model; ``backbone`` resnet18 (22.6 M parameters) or alexnet (5.1 M).

    Raises:
        ValueError: ``in_channels`` is not 3, or an unknown backbone.
    """
    return EmoticNet(num_classes, in_channels, backbone, context_backbone, **kwargs)  # type: ignore[arg-type]

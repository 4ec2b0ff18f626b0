"""EMOTIC's label space, readable without torch.

EMOTIC: Kosti, Alvarez, Recasens, Lapedriza, "Context Based Emotion Recognition using EMOTIC
Dataset", IEEE TPAMI 2019 (and "Emotion Recognition in Context", CVPR 2017). Each annotated
person has any number of 26 discrete emotion categories (multilabel) and three continuous
dimensions, valence, arousal and dominance, on a 1-10 scale.
"""

from __future__ import annotations

from pathlib import Path

from vidaffect.errors import CheckpointError
from vidaffect.models.meta import CheckpointMeta

#: The 26 categories in the papers' (alphabetical) order; the logit order of every EMOTIC model.
CATEGORIES: tuple[str, ...] = (
    "Affection",
    "Anger",
    "Annoyance",
    "Anticipation",
    "Aversion",
    "Confidence",
    "Disapproval",
    "Disconnection",
    "Disquietment",
    "Doubt/Confusion",
    "Embarrassment",
    "Engagement",
    "Esteem",
    "Excitement",
    "Fatigue",
    "Fear",
    "Happiness",
    "Pain",
    "Peace",
    "Pleasure",
    "Sadness",
    "Sensitivity",
    "Suffering",
    "Surprise",
    "Sympathy",
    "Yearning",
)

#: The continuous dimensions, in the order of a model's VAD output.
VAD: tuple[str, ...] = ("valence", "arousal", "dominance")

#: Range of the continuous dimensions in EMOTIC's annotations.
VAD_RANGE: tuple[float, float] = (1.0, 10.0)


def check_emotic_meta(meta: CheckpointMeta, path: str | Path) -> CheckpointMeta:
    """``meta`` when it describes an EMOTIC body + context model (multilabel over
    :data:`CATEGORIES`, with a context size); reads nothing else, imports no torch.

    Raises:
        CheckpointError: naming ``path``, its task and architecture.
    """
    if meta.task != "multilabel" or meta.context_size is None or list(meta.labels) != list(CATEGORIES):
        raise CheckpointError(f"{path} is not an EMOTIC checkpoint (task {meta.task}, arch {meta.arch})")
    return meta

"""EMOTIC's label space, readable without torch.

EMOTIC: Kosti, Alvarez, Recasens, Lapedriza, "Context Based Emotion Recognition using EMOTIC
Dataset", IEEE TPAMI 2019 (and "Emotion Recognition in Context", CVPR 2017). Each annotated
person has any number of 26 discrete emotion categories (multilabel) and three continuous
dimensions, valence, arousal and dominance, on a 1-10 scale.
"""

from __future__ import annotations

#: The 26 categories in the papers' (alphabetical) order; the logit order of every EMOTIC model.
CATEGORIES: tuple[str, ...] = (
    "Affection", "Anger", "Annoyance", "Anticipation", "Aversion", "Confidence", "Disapproval",
    "Disconnection", "Disquietment", "Doubt/Confusion", "Embarrassment", "Engagement", "Esteem",
    "Excitement", "Fatigue", "Fear", "Happiness", "Pain", "Peace", "Pleasure", "Sadness",
    "Sensitivity", "Suffering", "Surprise", "Sympathy", "Yearning",
)

#: The continuous dimensions, in the order of a model's VAD output.
VAD: tuple[str, ...] = ("valence", "arousal", "dominance")

#: Range of the continuous dimensions in EMOTIC's annotations.
VAD_RANGE: tuple[float, float] = (1.0, 10.0)

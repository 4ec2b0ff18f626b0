"""Losses of the EMOTIC model: a weighted multilabel loss for the 26 categories, SmoothL1 for VAD.

* ``bce``: binary cross-entropy on the logits with a positive weight per category,
  ``(negatives / positives) ** power`` from the training labels, so rare categories (Pain,
  Embarrassment) are not drowned by frequent ones (Engagement).
* ``kosti``: the dynamically weighted loss of Kosti et al. (TPAMI 2019, eq. 2): in each
  batch, category i weighs ``w_i = 1 / ln(c + p_i)`` with ``p_i`` its share of positives in
  the batch and ``c = 1.2`` (``w_i = 1e-4`` when ``p_i = 0``), applied to the squared error.
  The paper squares the error of raw outputs; here it is the error of ``sigmoid(logits)``, so
  both losses give per-category probabilities.

VAD: SmoothL1 (Huber, beta 1) on EMOTIC's 1-10 scale, as in the papers' continuous loss.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

KOSTI_C = 1.2


def positive_weights(counts: np.ndarray, n: int, power: float = 0.5) -> torch.Tensor:
    """``(negatives / positives) ** power`` per category (float32 ``(K,)``), for ``n`` samples
    with ``counts`` positives each; a category without positives or without negatives gets 1."""
    counts = np.asarray(counts, np.float64)
    w = np.where((counts > 0) & (counts < n), (n - counts) / np.maximum(counts, 1), 1.0) ** power
    return torch.tensor(w, dtype=torch.float32)


def kosti_weights(targets: torch.Tensor) -> torch.Tensor:
    """Kosti et al.'s per-batch category weights, float32 ``(K,)`` for ``(B, K)`` 0/1 targets."""
    p = targets.float().mean(dim=0)
    w = 1.0 / torch.log(KOSTI_C + p)
    return torch.where(p > 0, w, torch.full_like(w, 1e-4))


def category_loss(
    kind: str, logits: torch.Tensor, targets: torch.Tensor, pos_weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Loss of ``(B, K)`` logits against 0/1 targets; ``kind`` is ``bce`` or ``kosti``.

    Raises:
        ValueError: an unknown ``kind``.
    """
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(logits, targets, pos_weight=pos_weight)
    if kind == "kosti":
        err = (torch.sigmoid(logits) - targets) ** 2
        return (err * kosti_weights(targets)).sum(dim=1).mean()
    raise ValueError(f"unknown category loss {kind!r}; choose bce or kosti")


def vad_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SmoothL1 of ``(B, 3)`` valence/arousal/dominance on the 1-10 scale."""
    return F.smooth_l1_loss(pred, target)

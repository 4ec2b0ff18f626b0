"""Consistency training: the Jensen-Shannon divergence between a face's predictions with and
without camera corruptions (AugMix, Hendrycks et al., "AugMix: A Simple Data Processing Method
to Improve Robustness and Uncertainty", ICLR 2020, eq. 2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def consistency_loss(logits: torch.Tensor) -> torch.Tensor:
    """``JS(p_0, ..., p_{V-1})``: the mean over views of ``KL(p_v || M)``, ``M`` their mean,
    averaged over the batch (a scalar, in nats; 0 when the views agree).

    Args:
        logits: float32 ``(V, B, C)``: ``V`` >= 2 views of the same ``B`` faces.

    Raises:
        ValueError: fewer than two views.
    """
    if logits.dim() != 3 or logits.shape[0] < 2:
        raise ValueError(f"expected logits (V >= 2, B, C), got shape {tuple(logits.shape)}")
    probs = F.softmax(logits.float(), dim=2)
    log_mixture = probs.mean(0).clamp(1e-7, 1.0).log()
    return torch.stack([F.kl_div(log_mixture, p, reduction="batchmean") for p in probs]).mean()


def flatten_views(x: torch.Tensor) -> torch.Tensor:
    """float32 ``(B, V, C, H, W)`` faces to ``(V * B, C, H, W)``, view-major (the first ``B``
    rows are view 0), for one forward pass of all views."""
    b, v = x.shape[:2]
    return x.transpose(0, 1).reshape(v * b, *x.shape[2:])

"""Calibrated class probabilities: temperature scaling and the expected calibration error.

Temperature scaling (Guo et al., "On Calibration of Modern Neural Networks", ICML 2017):
one scalar ``T`` divides a trained model's logits, ``softmax(logits / T)``; it is fitted on
held-out data by minimising the negative log-likelihood, and leaves top-1 unchanged (the
order of the logits does not move). The expected calibration error (ECE; Naeini et al.,
AAAI 2015) bins faces by confidence (the top-1 probability) and averages ``|accuracy -
confidence|`` over the bins, weighted by their share of the faces.
"""

from __future__ import annotations

import numpy as np

T_BOUNDS = (0.05, 20.0)
"""Temperatures searched."""


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """float64 ``(N, C)`` probabilities of ``logits`` ``(N, C)`` divided by ``temperature``."""
    z = np.asarray(logits, np.float64) / temperature
    z -= z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood of ``labels`` (int ``(N,)``) at ``temperature``."""
    z = np.asarray(logits, np.float64) / temperature
    z -= z.max(1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(1, keepdims=True))
    return float(-log_p[np.arange(len(labels)), labels].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature in :data:`T_BOUNDS` that minimises :func:`nll` (a bounded scalar search
    over ``log T``, scipy's ``minimize_scalar``).

    Raises:
        ValueError: no faces.
    """
    from scipy.optimize import minimize_scalar

    if not len(labels):
        raise ValueError("no faces to fit a temperature on")
    lo, hi = np.log(T_BOUNDS)
    res = minimize_scalar(
        lambda log_t: nll(logits, labels, float(np.exp(log_t))),
        bounds=(lo, hi),
        method="bounded",
        options={"xatol": 1e-4},
    )
    return float(np.exp(res.x))


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE of probabilities ``(N, C)`` against ``labels`` ``(N,)``: ``bins`` equal-width
    confidence bins over [0, 1] (15, as in Guo et al.), weighted by their counts."""
    conf = probs.max(1)
    correct = probs.argmax(1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            ece += inside.mean() * abs(correct[inside].mean() - conf[inside].mean())
    return float(ece)

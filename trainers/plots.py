"""Report figures (PNG): confusion matrix, learning curves, a gallery of predictions.

Figures are drawn on matplotlib's Agg canvas through :class:`matplotlib.figure.Figure`
directly, so nothing touches pyplot's global state or needs a display.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=110)
    return path


def plot_confusion(cm: np.ndarray, labels: Sequence[str], path: str | Path) -> Path:
    """Two panels: counts, and rows normalised to sum 1 (recall on the diagonal).

    Args:
        cm: int ``(C, C)``, rows true class, columns predicted class.
    """
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros(cm.shape, np.float64), where=rows > 0)
    n = len(labels)
    side = max(4.0, 0.6 * n + 2)
    fig = Figure(figsize=(2 * side + 1, side), layout="constrained")
    for ax, values, title, fmt in (
        (fig.add_subplot(1, 2, 1), cm, "counts", "d"),
        (fig.add_subplot(1, 2, 2), norm, "row-normalised (recall)", ".2f"),
    ):
        im = ax.imshow(values, cmap="Blues", vmin=0)
        fig.colorbar(im, ax=ax, shrink=0.8)
        ax.set(title=title, xlabel="predicted", ylabel="true", xticks=range(n), yticks=range(n))
        ax.set_xticklabels(labels, rotation=45, ha="right")
        ax.set_yticklabels(labels)
        top = values.max() if values.size else 0
        for (i, j), v in np.ndenumerate(values):
            colour = "white" if top and v > top / 2 else "black"
            ax.text(j, i, format(v, fmt), ha="center", va="center", fontsize=8, color=colour)
    return _save(fig, path)


def plot_learning_curves(
    history: Sequence[dict[str, Any]],
    path: str | Path,
    metrics: Sequence[tuple[str, str]] = (("loss", "loss"), ("top1", "top-1 accuracy")),
) -> Path:
    """One panel per metric, train and validation per epoch (``history.json`` of a run).

    Args:
        history: one dict per epoch with ``epoch`` and any of ``train_<metric>``,
            ``val_<metric>``, ``ema_val_<metric>`` (weight-averaged model) for the ``metrics``.
        metrics: ``(key, title)`` per panel.

    Raises:
        ValueError: ``history`` is empty.
    """
    if not history:
        raise ValueError("empty history: nothing to plot")
    epochs = [h.get("epoch", i + 1) for i, h in enumerate(history)]
    fig = Figure(figsize=(5 * len(metrics), 4), layout="constrained")
    for k, (metric, title) in enumerate(metrics):
        ax = fig.add_subplot(1, len(metrics), k + 1)
        for part, legend in (("train", "train"), ("val", "val"), ("ema_val", "val, EMA weights")):
            ys = [h.get(f"{part}_{metric}") for h in history]
            if any(y is not None for y in ys):
                ys = [np.nan if y is None else y for y in ys]
                ax.plot(epochs, ys, marker="o", markersize=3, label=legend)
        ax.set(title=title, xlabel="epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, path)


def plot_gallery(
    images: np.ndarray,
    true: np.ndarray,
    pred: np.ndarray,
    confidence: np.ndarray,
    labels: Sequence[str],
    path: str | Path,
    per_group: int = 16,
    seed: int = 0,
) -> Path:
    """A grid of correctly (green titles) and wrongly (red) classified faces.

    Up to ``per_group`` of each, drawn at random (seeded). Each tile is titled
    ``true -> pred (confidence)``.

    Args:
        images: uint8 ``(N, H, W)`` grayscale.
        true, pred: int ``(N,)`` indices into ``labels``.
        confidence: float ``(N,)``, probability of the predicted class.
    """
    rng = np.random.default_rng(seed)
    groups = []
    for ok in (True, False):
        idx = np.flatnonzero((true == pred) == ok)
        groups.append((ok, rng.permutation(idx)[:per_group]))
    cols = 8
    rows = [max(1, -(-len(idx) // cols)) for _, idx in groups]
    fig = Figure(figsize=(cols * 1.4, sum(rows) * 1.6 + 0.6), layout="constrained")
    subfigs = fig.subfigures(2, 1, height_ratios=rows)
    for sub, (ok, idx), nrows in zip(subfigs, groups, rows):
        sub.suptitle(f"{'correct' if ok else 'wrong'} ({len(idx)} shown)", fontsize=10)
        axes = sub.subplots(nrows, cols, squeeze=False)
        for k, ax in enumerate(axes.flat):
            ax.axis("off")
            if k >= len(idx):
                continue
            i = idx[k]
            ax.imshow(images[i], cmap="gray", vmin=0, vmax=255)
            ax.set_title(
                f"{labels[true[i]]}\n-> {labels[pred[i]]} ({confidence[i]:.2f})",
                fontsize=6,
                color="green" if ok else "red",
            )
    return _save(fig, path)


def plot_cooccurrence(matrix: np.ndarray, labels: Sequence[str], path: str | Path, title: str) -> Path:
    """A heatmap of a ``(K, K)`` label co-occurrence matrix, e.g. ``P(column | row)``.

    Args:
        matrix: float ``(K, K)`` values in [0, 1].
    """
    n = len(labels)
    fig = Figure(figsize=(0.32 * n + 3, 0.32 * n + 2), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(matrix, cmap="viridis", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, shrink=0.8)
    ax.set(title=title, xticks=range(n), yticks=range(n))
    ax.set_xticklabels(labels, rotation=90, fontsize=7)
    ax.set_yticklabels(labels, fontsize=7)
    return _save(fig, path)


def plot_average_precision(
    ap: np.ndarray, prevalence: np.ndarray, labels: Sequence[str], path: str | Path
) -> Path:
    """Per-category AP as bars, with each category's prevalence (the AP of the label prior)
    as a marker.

    Args:
        ap, prevalence: float ``(K,)`` in [0, 1] (NaN AP: no positives, drawn as 0).
    """
    n = len(labels)
    fig = Figure(figsize=(max(6.0, 0.35 * n + 2), 4.5), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(n)
    ax.bar(x, np.nan_to_num(ap), color="tab:blue", label="AP")
    ax.scatter(x, prevalence, color="tab:red", marker="_", s=120, label="prior (prevalence)")
    ax.set(
        ylim=(0, 1),
        ylabel="average precision",
        xticks=x,
        title=f"mAP {np.nanmean(ap):.3f} (prior {np.mean(prevalence):.3f})",
    )
    ax.set_xticklabels(labels, rotation=90, fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    return _save(fig, path)

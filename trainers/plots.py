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


def plot_learning_curves(history: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Loss and top-1 per epoch, train and validation (``history.json`` of a training run).

    Args:
        history: one dict per epoch with ``epoch`` and any of ``train_loss``, ``val_loss``,
            ``train_top1``, ``val_top1``.

    Raises:
        ValueError: ``history`` is empty.
    """
    if not history:
        raise ValueError("empty history: nothing to plot")
    epochs = [h.get("epoch", i + 1) for i, h in enumerate(history)]
    fig = Figure(figsize=(10, 4), layout="constrained")
    for k, (metric, title) in enumerate((("loss", "loss"), ("top1", "top-1 accuracy"))):
        ax = fig.add_subplot(1, 2, k + 1)
        for part in ("train", "val"):
            ys = [h.get(f"{part}_{metric}") for h in history]
            if any(y is not None for y in ys):
                ys = [np.nan if y is None else y for y in ys]
                ax.plot(epochs, ys, marker="o", markersize=3, label=part)
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
                fontsize=6, color="green" if ok else "red",
            )
    return _save(fig, path)

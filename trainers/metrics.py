"""Classification metrics in plain numpy: confusion matrix, precision / recall / F1, macro-F1.

Shared by the trainers (FER-2013, EMOTIC). Conventions follow scikit-learn: rows of the
confusion matrix are true classes, columns predicted classes; a ratio whose denominator is
zero is 0.0 (scikit-learn's ``zero_division=0``).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts ``cm[t, p]`` of samples of true class ``t`` predicted as ``p``.

    Args:
        y_true, y_pred: integer ``(N,)`` class indices in ``[0, num_classes)``.

    Returns:
        int64 ``(num_classes, num_classes)``.

    Raises:
        ValueError: shapes differ, are not 1-D, or an index is out of range.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.ndim != 1 or y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred must be equal-length 1-D, got {y_true.shape} and {y_pred.shape}")
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if len(y) and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(f"{name} holds indices outside [0, {num_classes})")
    flat = y_true.astype(np.int64) * num_classes + y_pred.astype(np.int64)
    return np.bincount(flat, minlength=num_classes**2).reshape(num_classes, num_classes)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def precision_recall_f1(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-class ``(precision, recall, f1, support)`` from a confusion matrix.

    Returns:
        three float64 ``(C,)`` arrays and int64 ``(C,)`` support (true samples per class).
    """
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    precision = _ratio(tp, cm.sum(axis=0))
    recall = _ratio(tp, support)
    f1 = _ratio(2 * precision * recall, precision + recall)
    return precision, recall, f1, support.astype(np.int64)


def accuracy(cm: np.ndarray) -> float:
    """Top-1 accuracy: trace / total (0.0 for an empty matrix)."""
    total = cm.sum()
    return float(np.trace(cm) / total) if total else 0.0


def macro_f1(cm: np.ndarray) -> float:
    """Unweighted mean F1 over the classes that occur as a true or a predicted label.

    Classes that are neither in the data nor predicted are left out, as scikit-learn does
    when ``labels`` is not given; a class predicted but absent from the data counts as F1 0.
    """
    f1 = precision_recall_f1(cm)[2]
    present = _present(cm)
    return float(f1[present].mean()) if present.any() else 0.0


def _present(cm: np.ndarray) -> np.ndarray:
    """bool ``(C,)``: the class occurs as a true or a predicted label."""
    return (cm.sum(axis=1) > 0) | (cm.sum(axis=0) > 0)


def per_class(cm: np.ndarray, labels: list[str] | tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """``{label: {"precision", "recall", "f1", "support"}}`` in label order."""
    precision, recall, f1, support = precision_recall_f1(cm)
    return {
        name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for name, p, r, f, s in zip(labels, precision, recall, f1, support)
    }


def classification_report(cm: np.ndarray, labels: list[str] | tuple[str, ...], digits: int = 4) -> str:
    """A text table like scikit-learn's ``classification_report``.

    One row per class, then accuracy, macro average (over the classes that occur, as
    :func:`macro_f1`) and support-weighted average.
    """
    precision, recall, f1, support = precision_recall_f1(cm)
    present = _present(cm) | (not _present(cm).any())  # all classes when cm is empty
    width = max([len(n) for n in labels] + [len("weighted avg")])
    head = f"{'':>{width}} {'precision':>9} {'recall':>9} {'f1-score':>9} {'support':>9}"
    row = f"{{:>{width}}} {{:>9.{digits}f}} {{:>9.{digits}f}} {{:>9.{digits}f}} {{:>9}}"
    lines = [head, ""]
    for values in zip(labels, precision, recall, f1, support):
        lines.append(row.format(*values))
    total = int(support.sum())
    w = support / total if total else np.zeros_like(precision)
    macro = [x[present].mean() for x in (precision, recall, f1)]
    weighted = [(w * x).sum() for x in (precision, recall, f1)]
    lines += [
        "",
        f"{'accuracy':>{width}} {'':>9} {'':>9} {accuracy(cm):>9.{digits}f} {total:>9}",
        row.format("macro avg", *macro, total),
        row.format("weighted avg", *weighted, total),
    ]
    return "\n".join(lines) + "\n"

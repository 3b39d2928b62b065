"""Per-run metrics of one task's test predictions: accuracy, macro F1, confusion matrices and
classification reports (as scikit-learn prints them), reconstruction MSE and PSNR."""

from __future__ import annotations

import sys
from typing import Sequence

import numpy as np
from sklearn.metrics import classification_report


LOWER_IS_BETTER = frozenset({"mse"})


# Shown in the reports' tables and compared with the dedicated runs: each task has the first two
# (classification) or the last two (reconstruction).
TEST_METRICS = ("accuracy", "macro_f1", "mse", "psnr")


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int,
                           report_dict: dict | None = None) -> dict[str, float]:
    """Accuracy and macro precision/recall/F1 (absent classes count, as zeros)."""
    macro = (report_dict or report_data(confusion(y_true, y_pred, n_classes)))["macro avg"]
    return {
        "accuracy": float(np.mean(y_true == y_pred)),
        "macro_precision": float(macro["precision"]),
        "macro_recall": float(macro["recall"]),
        "macro_f1": float(macro["f1-score"]),
    }


def reconstruction_metrics(per_image_mse: np.ndarray) -> dict[str, float]:
    """Test MSE (pixels in [0, 1]) and PSNR in dB, each the mean over images (PSNR of an image:
    10 log10(1 / its MSE), as tf.image.psnr with max_val 1; a perfect image counts as 100 dB)."""
    mse = np.asarray(per_image_mse, dtype=np.float64)
    psnr = 10.0 * np.log10(1.0 / np.maximum(mse, 1e-10))
    return {"mse": float(mse.mean()), "psnr": float(psnr.mean())}


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows are true classes, columns predicted, as sklearn orders them."""
    counts = np.bincount(np.asarray(y_true) * n_classes + np.asarray(y_pred), minlength=n_classes * n_classes)
    return counts.reshape(n_classes, n_classes)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    return np.divide(numerator, denominator, out=np.zeros(len(numerator)), where=denominator > 0)


def report_data(matrix: np.ndarray) -> dict:
    """sklearn's `classification_report(..., output_dict=True, zero_division=0)` computed from the
    confusion matrix: sklearn's own input checks cost 20 ms a task, minutes for a study with
    thousands of (task, seed) pairs (tests/test_evaluate.py holds the two equal)."""
    tp, support, predicted = np.diag(matrix).astype(float), matrix.sum(axis=1), matrix.sum(axis=0)
    precision, recall = _ratio(tp, predicted.astype(float)), _ratio(tp, support.astype(float))
    f1 = _ratio(2 * tp, (support + predicted).astype(float))  # 2tp / (2tp + fp + fn)
    out: dict = {str(i): {"precision": float(precision[i]), "recall": float(recall[i]), "f1-score": float(f1[i]),
                          "support": float(support[i])} for i in range(len(matrix))}
    total = float(support.sum())
    out["accuracy"] = float(tp.sum() / total) if total else 0.0
    weights = support / total if total else np.zeros(len(matrix))
    for name, w in (("macro avg", None), ("weighted avg", weights)):
        out[name] = {"precision": float(np.average(precision, weights=w)), "recall": float(np.average(recall, weights=w)),
                     "f1-score": float(np.average(f1, weights=w)), "support": total}
    return out


def format_confusion(matrix: np.ndarray) -> str:
    """The matrix as `print(confusion_matrix(...))` shows it (no '...' elision for big ones)."""
    return np.array2string(matrix, threshold=sys.maxsize, max_line_width=sys.maxsize)


def report(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, names: Sequence[str] | None = None) -> str:
    """The classification report as sklearn prints it, rows labelled with the class names."""
    return classification_report(y_true, y_pred, labels=list(range(n_classes)), zero_division=0,
                                 target_names=list(names) if names else None)


def primary_metric(by_metric: dict) -> str:
    """The metric a task is judged by: accuracy, or MSE for a reconstruction."""
    return "accuracy" if "accuracy" in by_metric else "mse"

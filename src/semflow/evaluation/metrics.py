"""Segmentation scores from a confusion matrix accumulated over a whole split.

mIoU is computed from the summed confusion matrix (never as a mean of per-image scores), with the ignore
label excluded and classes absent from both prediction and label left out of the mean, as the standard
protocols (PASCAL VOC, Cityscapes, mmsegmentation) do. Scores are in ``[0, 1]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchmetrics.functional.classification import multiclass_confusion_matrix


@dataclass
class SegmentationScores:
    """``miou`` and ``pixel_accuracy`` in ``[0, 1]``; ``per_class_iou[c]`` is ``None`` for absent classes."""

    miou: float
    pixel_accuracy: float
    per_class_iou: list[float | None]


class ConfusionMatrix:
    """Accumulates ``matrix[label, prediction]`` pixel counts over many images.

    Args:
        num_classes: ``C``; labels and predictions are ``0 .. C-1``.
        ignore_index: label value that is not scored (``None``: every pixel is scored).
    """

    def __init__(self, num_classes: int, ignore_index: int | None = None) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.long)

    def update(self, prediction: torch.Tensor, label: torch.Tensor) -> None:
        """Add one batch: ``prediction`` and ``label`` integer maps of the same shape ``(..., H, W)``."""
        if prediction.shape != label.shape:
            raise ValueError(f"prediction {tuple(prediction.shape)} and label {tuple(label.shape)} differ in shape")
        self.matrix += multiclass_confusion_matrix(
            prediction.reshape(-1).cpu(),
            label.reshape(-1).cpu(),
            num_classes=self.num_classes,
            ignore_index=self.ignore_index,
            validate_args=False,
        ).long()

    def merge(self, other: ConfusionMatrix) -> None:
        """Add another matrix (for example one gathered from another process)."""
        self.matrix += other.matrix

    def scores(self) -> SegmentationScores:
        """mIoU, pixel accuracy and per-class IoU of everything accumulated so far."""
        m = self.matrix.double()
        tp = m.diag()
        union = m.sum(0) + m.sum(1) - tp
        present = union > 0
        iou = torch.where(present, tp / union.clamp(min=1), torch.nan)
        total = m.sum()
        return SegmentationScores(
            miou=float(iou[present].mean()) if bool(present.any()) else float("nan"),
            pixel_accuracy=float(tp.sum() / total) if total > 0 else float("nan"),
            per_class_iou=[float(v) if bool(p) else None for v, p in zip(iou, present)],
        )

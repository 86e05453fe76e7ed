"""Scoring models: segmentation over a split, synthesis, and the metrics they are built from.

* :mod:`~semflow.evaluation.metrics`: confusion matrix, mIoU, pixel accuracy.
* :mod:`~semflow.evaluation.segmentation`: any segmenter over a split at several step counts.
* :mod:`~semflow.evaluation.synthesis`: SIS-mIoU, cycle mIoU, diversity, FD-seg, FID/LPIPS.
* :mod:`~semflow.evaluation.frechet`, :mod:`~semflow.evaluation.diversity`, :mod:`~semflow.evaluation.perceptual`:
  the distances behind them (the last an optional extra, local weights only).

Names are imported lazily (``semflow.evaluation.metrics`` does not load the models).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ConfusionMatrix": "metrics", "SegmentationScores": "metrics",
    "EvaluationResult": "segmentation", "evaluate_segmentation": "segmentation", "check_compatible": "segmentation",
    "check_steps": "segmentation", "collate_at_size": "segmentation",
    "SynthesisResult": "synthesis", "evaluate_synthesis": "synthesis",
    "FeatureStatistics": "frechet", "frechet_distance": "frechet", "frechet_distance_between": "frechet",
    "mean_pairwise_distance": "diversity",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"semflow.evaluation.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'semflow.evaluation' has no attribute {name!r}")

"""Scoring a segmenter over a whole data split, at several step counts, the standard way.

Images are resized to the model's size; each prediction is resized back to its label's original size by
nearest neighbour and scored there; one confusion matrix per step count accumulates the whole split.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

import torch
from torch.utils.data import DataLoader

from semflow.data.base import SegmentationDataset
from semflow.data.transforms import eval_transform, resize_label
from semflow.errors import SemflowInputError
from semflow.metrics import ConfusionMatrix, SegmentationScores
from semflow.pipeline import SemFlowPipeline


@dataclass
class EvaluationResult:
    """Scores per step count, and the seconds spent segmenting per image per step count."""

    scores: dict[int, SegmentationScores]
    seconds_per_image: dict[int, float]
    class_names: tuple[str, ...]
    num_images: int

    def to_json(self) -> dict[str, Any]:
        """The ``evaluate`` command's JSON: mIoU, pixel accuracy and per-class IoU keyed by step count."""
        return {
            "miou": {str(n): s.miou for n, s in self.scores.items()},
            "pixel_accuracy": {str(n): s.pixel_accuracy for n, s in self.scores.items()},
            "per_class_iou": {
                str(n): dict(zip(self.class_names, s.per_class_iou)) for n, s in self.scores.items()
            },
            "seconds_per_image": {str(n): v for n, v in self.seconds_per_image.items()},
            "num_images": self.num_images,
        }


def check_compatible(pipeline: SemFlowPipeline, dataset: SegmentationDataset) -> None:
    """Raise unless the data set has the model's class list and ignore index."""
    model, data = pipeline.dataset, dataset.info
    if tuple(model.class_names) != tuple(data.class_names) or model.ignore_index != data.ignore_index:
        raise SemflowInputError(
            f"data set {data.name!r} has {data.num_classes} classes (ignore {data.ignore_index}), but the model was "
            f"trained on {model.name!r} with {model.num_classes} classes (ignore {model.ignore_index}); "
            "expected the same class list"
        )


def _collate(batch: list[dict[str, Any]], size: tuple[int, int]) -> dict[str, Any]:
    return {
        "images": torch.stack([eval_transform(s, size) for s in batch]),
        "labels": [s["label"] for s in batch],
        "names": [s["name"] for s in batch],
    }


def evaluate_segmentation(
    pipeline: SemFlowPipeline,
    dataset: SegmentationDataset,
    steps: Iterable[int],
    solver: str = "euler",
    batch_size: int = 16,
    num_workers: int = 0,
    progress: Callable[[Iterable[Any]], Iterable[Any]] = lambda it: it,
) -> EvaluationResult:
    """Segment every image of ``dataset`` with ``N`` steps for each ``N`` in ``steps`` and score it.

    Args:
        pipeline: the model (its device is used).
        dataset: the split to score; must have the model's class list.
        steps: step counts, each ``>= 1``.
        solver: ``euler``, ``heun`` or ``midpoint``.
        batch_size: images per forward pass.
        num_workers: data loader workers.
        progress: wraps the batch iterator (for example ``tqdm``).
    """
    import time

    steps = sorted(set(int(n) for n in steps))
    if not steps or steps[0] < 1:
        raise SemflowInputError(f"steps={steps}; expected whole numbers >= 1")
    check_compatible(pipeline, dataset)
    if len(dataset) == 0:
        raise SemflowInputError(f"data set split {dataset.split!r} is empty")
    info = dataset.info
    matrices = {n: ConfusionMatrix(info.num_classes, info.ignore_index) for n in steps}
    seconds = {n: 0.0 for n in steps}
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers,
                        collate_fn=lambda b: _collate(b, pipeline.size))
    device = next(pipeline.parameters()).device
    for batch in progress(loader):
        images = batch["images"].to(device)
        for n in steps:
            start = time.perf_counter()
            out = pipeline.segment(images, steps=n, solver=solver)
            seconds[n] += time.perf_counter() - start
            for pred, label in zip(out.labels, batch["labels"]):
                matrices[n].update(resize_label(pred.cpu(), tuple(label.shape)), label)
    return EvaluationResult(
        scores={n: m.scores() for n, m in matrices.items()},
        seconds_per_image={n: s / len(dataset) for n, s in seconds.items()},
        class_names=info.class_names,
        num_images=len(dataset),
    )

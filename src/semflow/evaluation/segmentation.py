"""Scoring a segmenter over a whole data split, at several step counts, the standard way.

Images are resized to the model's size; each prediction is resized back to its label's original size by
nearest neighbour and scored there; one confusion matrix per step count accumulates the whole split. Any model
of :mod:`semflow.models` is scored the same way. Split across processes, each scores its share and the
confusion matrices (never per-image means) are summed with :meth:`EvaluationResult.merge`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import torch
from torch.utils.data import DataLoader, Subset

from semflow.data.base import DatasetInfo, SegmentationDataset
from semflow.data.transforms import eval_transform, resize_label
from semflow.errors import SemflowInputError
from semflow.evaluation.metrics import ConfusionMatrix, SegmentationScores
from semflow.models.base import Segmenter


@dataclass
class EvaluationResult:
    """One confusion matrix per step count, the seconds spent segmenting per step count, the images scored."""

    matrices: dict[int, ConfusionMatrix]
    seconds: dict[int, float]
    class_names: tuple[str, ...]
    num_images: int

    @property
    def scores(self) -> dict[int, SegmentationScores]:
        return {n: m.scores() for n, m in self.matrices.items()}

    @property
    def seconds_per_image(self) -> dict[int, float]:
        """Segmentation time per image (the sum over processes when merged: compute time, not wall time)."""
        return {n: s / max(self.num_images, 1) for n, s in self.seconds.items()}

    @classmethod
    def merge(cls, parts: Sequence[EvaluationResult]) -> EvaluationResult:
        """The result of the union of the parts' images: matrices, seconds and counts summed."""
        first = parts[0]
        matrices = {n: ConfusionMatrix(m.num_classes, m.ignore_index) for n, m in first.matrices.items()}
        for part in parts:
            if part.matrices.keys() != first.matrices.keys() or part.class_names != first.class_names:
                raise ValueError("cannot merge evaluation results of different step counts or class lists")
            for n, m in part.matrices.items():
                matrices[n].merge(m)
        return cls(matrices, {n: sum(p.seconds[n] for p in parts) for n in first.seconds}, first.class_names,
                   sum(p.num_images for p in parts))

    def to_json(self) -> dict[str, Any]:
        """The ``evaluate`` command's JSON: mIoU, pixel accuracy and per-class IoU keyed by step count."""
        scores = self.scores
        return {
            "miou": {str(n): s.miou for n, s in scores.items()},
            "pixel_accuracy": {str(n): s.pixel_accuracy for n, s in scores.items()},
            "per_class_iou": {str(n): dict(zip(self.class_names, s.per_class_iou)) for n, s in scores.items()},
            "seconds_per_image": {str(n): v for n, v in self.seconds_per_image.items()},
            "num_images": self.num_images,
        }


def default_split(info: DatasetInfo) -> str:
    """The split scored unless one is named: ``test`` where the data set has one, else its last (COCO-Stuff: ``val``)."""
    splits = info.extra.get("splits")
    return "test" if not splits or "test" in splits else list(splits)[-1]


def check_segments(pipeline: Segmenter) -> None:
    """Raise unless the model segments (:attr:`~semflow.models.base.Segmenter.can_segment`)."""
    if not pipeline.can_segment:
        raise SemflowInputError(f"a {pipeline.method} model only synthesizes; segmentation needs a model that segments")


def check_compatible(pipeline: Segmenter, dataset: SegmentationDataset) -> None:
    """Raise unless the data set has the model's class list and ignore index."""
    model, data = pipeline.dataset, dataset.info
    if tuple(model.class_names) != tuple(data.class_names) or model.ignore_index != data.ignore_index:
        raise SemflowInputError(
            f"data set {data.name!r} has {data.num_classes} classes (ignore {data.ignore_index}), but the model was "
            f"trained on {model.name!r} with {model.num_classes} classes (ignore {model.ignore_index}); "
            "expected the same class list"
        )


def check_steps(pipeline: Segmenter, steps: Iterable[int]) -> list[int]:
    """Sorted distinct step counts, each ``>= 1``; just ``[1]`` for a one-pass model (steps do not apply)."""
    steps = sorted(set(int(n) for n in steps))
    if not steps or steps[0] < 1:
        raise SemflowInputError(f"steps={steps}; expected whole numbers >= 1")
    return steps if pipeline.STEPPED else [1]


def collate_at_size(batch: list[dict[str, Any]], size: tuple[int, int]) -> dict[str, Any]:
    """Samples to ``images`` ``(B, 3, h, w)`` in ``[0, 1]`` at the model ``size``, their original ``labels`` and ``names``."""
    return {
        "images": torch.stack([eval_transform(s, size) for s in batch]),
        "labels": [s["label"] for s in batch],
        "names": [s["name"] for s in batch],
    }


def evaluate_segmentation(
    pipeline: Segmenter,
    dataset: SegmentationDataset,
    steps: Iterable[int],
    solver: str | None = None,
    batch_size: int = 16,
    num_workers: int = 0,
    progress: Callable[[Iterable[Any]], Iterable[Any]] = lambda it: it,
    indices: Sequence[int] | None = None,
) -> EvaluationResult:
    """Segment every image of ``dataset`` with ``N`` steps for each ``N`` in ``steps`` and score it.

    Args:
        pipeline: the model (its device is used): any :class:`~semflow.models.base.Segmenter`.
        dataset: the split to score; must have the model's class list.
        steps: step counts, each ``>= 1`` (one-pass models are scored once, under ``1``).
        solver: one of the model's ``SOLVERS`` (default its ``DEFAULT_SOLVER``).
        batch_size: images per forward pass.
        num_workers: data loader workers.
        progress: wraps the batch iterator (for example ``tqdm``).
        indices: score only these images (this process's share; merge the parts' results).
    """
    if not pipeline.can_segment:
        raise SemflowInputError(f"a {pipeline.method} model only synthesizes; segmentation is scored for models "
                                "that segment (semflow, dsm, discriminative)")
    steps = check_steps(pipeline, steps)
    solver = pipeline.check_solver(solver)
    check_segments(pipeline)
    check_compatible(pipeline, dataset)
    if len(dataset) == 0:
        raise SemflowInputError(f"data set split {dataset.split!r} is empty")
    info = dataset.info
    matrices = {n: ConfusionMatrix(info.num_classes, info.ignore_index) for n in steps}
    seconds = {n: 0.0 for n in steps}
    subset = dataset if indices is None else Subset(dataset, list(indices))
    loader = DataLoader(subset, batch_size=batch_size, num_workers=num_workers,  # type: ignore[arg-type]
                        collate_fn=lambda b: collate_at_size(b, pipeline.size))
    device = next(pipeline.parameters()).device
    for batch in progress(loader):
        images = batch["images"].to(device)
        start = time.perf_counter()
        latents = pipeline.encode_input(images)  # once per batch, whatever the step counts
        encoding = time.perf_counter() - start
        for n in steps:
            start = time.perf_counter()
            out = pipeline.segment(images, steps=n, solver=solver, latents=latents)
            seconds[n] += encoding
            seconds[n] += time.perf_counter() - start
            for pred, label in zip(out.labels, batch["labels"]):
                matrices[n].update(resize_label(pred.cpu(), tuple(label.shape)), label)
    return EvaluationResult(matrices=matrices, seconds=seconds, class_names=info.class_names,
                            num_images=len(subset))  # type: ignore[arg-type]

"""The training scenes a method may ask for before training (:meth:`semflow.models.base.Segmenter.prepare_training`)
and after it (:meth:`~semflow.models.base.Segmenter.finish_training`).

Up to ``max_scenes`` evenly spaced scenes of the training data set (the decoded cache, where training uses one),
each taken whole (resized to the model size, no crop or flip) and encoded as segmentation encodes it (the
posterior mode), or read from the latent cache, which holds exactly those posteriors. Deterministic: a resumed run
gets the same scenes.
"""

from __future__ import annotations

from typing import Callable, Iterator

import torch

from semflow.data.base import SegmentationDataset
from semflow.data.transforms import resize_pair
from semflow.evaluation.subset import evenly_spaced_indices
from semflow.models.base import Segmenter
from semflow.training.latents import PosteriorCache

MAX_SCENES = 512
Scenes = Callable[[], Iterator[tuple[torch.Tensor, torch.Tensor]]]


def image_scenes(model: Segmenter, dataset: SegmentationDataset, max_scenes: int = 16,
                 batch_size: int = 16) -> Scenes:
    """Batches ``(images (B, 3, h, w) in [0, 1], labels (B, h, w))`` of ``min(len(dataset), max_scenes)`` evenly
    spaced training scenes, each whole and resized to the model size (:meth:`Segmenter.finish_training`)."""

    def scenes() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        indices = evenly_spaced_indices(len(dataset), max_scenes) or list(range(len(dataset)))
        for start in range(0, len(indices), batch_size):
            pairs = [resize_pair(dataset[i], model.size) for i in indices[start:start + batch_size]]
            yield torch.stack([image for image, _ in pairs]), torch.stack([label for _, label in pairs])

    return scenes


def dataset_scenes(model: Segmenter, dataset: SegmentationDataset, max_scenes: int = MAX_SCENES,
                   batch_size: int = 16) -> Scenes:
    """:func:`image_scenes` encoded by ``model`` when called: batches ``(latents (B, C, h/f, w/f), labels (B, h, w))``
    (:meth:`Segmenter.prepare_training`)."""
    images = image_scenes(model, dataset, max_scenes, batch_size)

    @torch.no_grad()
    def scenes() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for batch, labels in images():
            yield model.encode_input(batch), labels

    return scenes


def cached_scenes(cache: PosteriorCache, max_scenes: int = MAX_SCENES) -> Scenes:
    """The scenes :func:`dataset_scenes` would encode, from a latent cache's unflipped posterior means and labels
    (no codec call), in one batch."""

    def scenes() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        rows = evenly_spaced_indices(len(cache), max_scenes) or list(range(len(cache)))
        yield cache.mean[rows, 0], cache.labels[rows]

    return scenes

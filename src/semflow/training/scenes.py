"""Collecting the scene bank of a ``model.image_source=class-means`` model (:mod:`semflow.flow.class_means`).

The class means of up to ``max_scenes`` evenly spaced scenes of the training data set (the decoded cache, where
training uses one), each taken whole (resized to the model size, no crop or flip) and encoded as segmentation
encodes it (the posterior mode), or read from the latent cache, which holds exactly those posteriors.
Deterministic: a resumed run collects the same bank.
"""

from __future__ import annotations

import torch

from semflow.data.base import SegmentationDataset
from semflow.data.transforms import resize_pair
from semflow.evaluation.subset import evenly_spaced_indices
from semflow.flow.class_means import SceneBank, class_means
from semflow.models.semflow import SemFlowPipeline
from semflow.training.latents import PosteriorCache

MAX_SCENES = 512


@torch.no_grad()
def collect_scenes(model: SemFlowPipeline, dataset: SegmentationDataset, max_scenes: int = MAX_SCENES,
                   batch_size: int = 16) -> SceneBank:
    """The class means ``(N, K + 1, C)`` of ``N = min(len(dataset), max_scenes)`` training scenes."""
    indices = evenly_spaced_indices(len(dataset), max_scenes) or list(range(len(dataset)))
    means, present = [], []
    for start in range(0, len(indices), batch_size):
        pairs = [resize_pair(dataset[i], model.size) for i in indices[start:start + batch_size]]
        images = torch.stack([image for image, _ in pairs])
        labels = torch.stack([label for _, label in pairs])
        m, p = class_means(model.encode_input(images).float(), labels, model.palette.num_classes)
        means.append(m.cpu())
        present.append(p.cpu())
    return SceneBank(torch.cat(means), torch.cat(present))


def scenes_from_cache(cache: PosteriorCache, num_classes: int, max_scenes: int = MAX_SCENES) -> SceneBank:
    """The bank :func:`collect_scenes` would encode, from a latent cache's unflipped posterior means and labels
    (no codec call)."""
    rows = evenly_spaced_indices(len(cache), max_scenes) or list(range(len(cache)))
    means, present = class_means(cache.mean[rows, 0], cache.labels[rows], num_classes)
    return SceneBank(means, present)

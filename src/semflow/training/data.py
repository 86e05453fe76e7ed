"""What the loop iterates: augmented training pairs, or pairs from the latent cache.

The augmentation of sample ``i`` in epoch ``e`` comes from :func:`semflow.seeding.make_generator` of
``(seed, e, i)``, so a seed reproduces a run whatever the number of workers or processes.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from semflow.data.base import SegmentationDataset
from semflow.data.transforms import draw_flip, resize_pair, train_transform
from semflow.seeding import make_generator
from semflow.training.latents import PosteriorCache


class TrainingPairs(Dataset):
    """Augmented ``(image (3, h, w) in [0, 1], label (h, w))`` pairs at the model size.

    ``augment``: ``scale-crop-flip``, ``flip`` or ``none`` (see :class:`semflow.config.TrainConfig`); the loop
    sets :attr:`epoch` before each epoch."""

    def __init__(self, dataset: SegmentationDataset, size: tuple[int, int], seed: int,
                 augment: str = "scale-crop-flip") -> None:
        self.dataset, self.size, self.seed, self.augment, self.epoch = dataset, size, seed, augment, 0

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        generator = make_generator(self.seed, self.epoch, index)
        if self.augment == "scale-crop-flip":
            return train_transform(self.dataset[index], self.size, generator)
        image, label = resize_pair(self.dataset[index], self.size)
        if self.augment == "flip" and draw_flip(generator):
            image, label = image.flip(-1), label.flip(-1)
        return image.contiguous(), label.contiguous()


class CachedPairs(Dataset):
    """``(mean, std, label)`` from a :class:`PosteriorCache`, flipped exactly when :class:`TrainingPairs` with
    the same seed and ``augment`` would flip the image, so cached and uncached runs see the same data."""

    def __init__(self, cache: PosteriorCache, seed: int, augment: str) -> None:
        self.cache, self.seed, self.augment, self.epoch = cache, seed, augment, 0

    def __len__(self) -> int:
        return len(self.cache)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        flipped = self.augment == "flip" and draw_flip(make_generator(self.seed, self.epoch, index))
        return self.cache.item(index, flipped)

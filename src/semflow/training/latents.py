"""Exact latent caching for a frozen codec: every training image's posterior, computed once.

A frozen codec maps an image to the same posterior ``N(mean, std^2)`` every time it sees it, so encoding the
image again each epoch only repeats work. :class:`PosteriorCache` keeps ``(mean, std)`` per sample, and
training draws ``z0 = mean + std * eps`` afresh each step (:meth:`semflow.models.base.Segmenter.posterior_training_loss`):
the same loss, with the same random numbers, as encoding each step. Caching the mean alone would not be
exact: it would train on the mode where the authors train on samples.

Only inputs that do not change between epochs can be cached: a random scale/crop would need a posterior per
crop. The cache holds the image resized to the model size (:func:`semflow.data.transforms.resize_pair`) and,
for ``flip`` augmentation, also its mirror image, encoded separately (a convolutional encoder does not commute
with flipping). Memory: ``N x orientations x C x h x w x 4`` bytes for the means, as much again for the standard
deviations of a stochastic codec (none for deterministic ones such as TAESD and the pixel codec), plus the labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch.utils.data import DataLoader, Dataset

from semflow.codecs.base import Codec
from semflow.data.base import SegmentationDataset
from semflow.data.transforms import resize_pair

if TYPE_CHECKING:
    from accelerate import Accelerator

    from semflow.models.base import Segmenter


class _Resized(Dataset):
    """``(image (3, h, w) in [0, 1], label (h, w))`` of some samples, resized to the model size."""

    def __init__(self, dataset: SegmentationDataset, indices: Sequence[int], size: tuple[int, int]) -> None:
        self.dataset, self.indices, self.size = dataset, list(indices), size

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> tuple[torch.Tensor, torch.Tensor]:
        return resize_pair(self.dataset[self.indices[position]], self.size)


@dataclass
class PosteriorCache:
    """Image posteriors of (some of) a data set's samples at the model size.

    Attributes:
        indices: int64 ``(N,)``, the data set index of each row.
        mean: float32 ``(N, F, C, h, w)``; orientation ``F = 0`` as is, ``F = 1`` (when present) the image
            flipped left-right before encoding.
        std: like ``mean``, or ``None`` for a deterministic codec (``std == 0`` everywhere).
        labels: int64 ``(N, h, w)`` class maps at the model size, not flipped.
    """

    indices: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor | None
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.indices.numel())

    @property
    def nbytes(self) -> int:
        """Bytes held by the cache's tensors."""
        tensors = [self.indices, self.mean, self.labels] + ([self.std] if self.std is not None else [])
        return sum(t.numel() * t.element_size() for t in tensors)

    @property
    def orientations(self) -> int:
        """1 (as is) or 2 (as is and flipped)."""
        return int(self.mean.shape[1])

    def item(self, row: int, flipped: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(mean, std, label)`` of row ``row``: ``(C, h, w)``, ``(C, h, w)`` (zeros when deterministic)
        and ``(h, w)``, the label flipped left-right when ``flipped`` (which needs a cache built with flips)."""
        if flipped and self.orientations < 2:
            raise ValueError("this cache holds no flipped posteriors; build it with flips=True")
        mean = self.mean[row, int(flipped)]
        std = self.std[row, int(flipped)] if self.std is not None else torch.zeros_like(mean)
        label = self.labels[row].flip(-1) if flipped else self.labels[row]
        return mean, std, label

    @classmethod
    @torch.no_grad()
    def build(
        cls,
        codec: Codec,
        dataset: SegmentationDataset,
        size: tuple[int, int],
        flips: bool,
        indices: Sequence[int] | None = None,
        batch_size: int = 16,
        num_workers: int = 0,
    ) -> PosteriorCache:
        """Encode samples ``indices`` (default: all) of ``dataset`` at ``size = (h, w)``.

        Runs on the codec's device (the CPU for a codec without parameters) in whatever autocast context the
        caller holds, so that the posteriors are those training would compute; stores them on the CPU.

        Args:
            codec: the frozen codec.
            dataset: original-size samples.
            size: the model size ``(h, w)`` in pixels.
            flips: also encode every image flipped left-right.
            indices: which samples, in this order.
            batch_size: images per encoder call.
            num_workers: data loader workers reading and resizing samples.
        """
        indices = list(range(len(dataset))) if indices is None else list(indices)
        param = next(codec.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        c, h, w = codec.latent_shape(*size)
        orientations = 2 if flips else 1
        mean = torch.empty(len(indices), orientations, c, h, w)
        std = torch.empty_like(mean)
        labels = torch.empty(len(indices), *size, dtype=torch.int64)
        loader = DataLoader(_Resized(dataset, indices, size), batch_size=batch_size, num_workers=num_workers)
        row = 0
        for images, batch_labels in loader:
            images = images.to(device)
            rows = slice(row, row + images.shape[0])
            labels[rows] = batch_labels
            for orientation in range(orientations):
                posterior = codec.image_posterior(images.flip(-1) if orientation else images)
                mean[rows, orientation] = posterior.mean.float().cpu()
                std[rows, orientation] = posterior.std.float().cpu()
            row += images.shape[0]
        deterministic = not bool(std.any())
        return cls(torch.tensor(indices, dtype=torch.int64), mean, None if deterministic else std, labels)

    @classmethod
    def merge(cls, parts: Sequence[PosteriorCache], length: int) -> PosteriorCache:
        """One cache whose row ``i`` is sample ``i``, from parts that together cover ``0 .. length - 1`` once.

        Raises:
            ValueError: a sample is missing or covered twice, or the parts disagree on shapes.
        """
        parts = [p for p in parts if len(p)]
        indices = torch.cat([p.indices for p in parts]) if parts else torch.empty(0, dtype=torch.int64)
        if indices.numel() != length or not torch.equal(indices.sort().values, torch.arange(length)):
            raise ValueError(f"the parts cover {indices.unique().numel()} of {length} samples "
                             f"({indices.numel()} rows); expected each sample once")
        order = indices.argsort()
        stochastic = any(p.std is not None for p in parts)
        std = torch.cat([p.std if p.std is not None else torch.zeros_like(p.mean) for p in parts])[order] if stochastic else None
        return cls(
            indices=indices[order],
            mean=torch.cat([p.mean for p in parts])[order],
            std=std,
            labels=torch.cat([p.labels for p in parts])[order],
        )


def build_posterior_cache(accelerator: Accelerator, model: Segmenter, dataset: SegmentationDataset,
                          augment: str, batch_size: int, num_workers: int = 0) -> PosteriorCache:
    """Every process encodes its share of the training images; all receive the whole cache."""
    import time

    from accelerate.utils import gather_object

    began = time.perf_counter()
    with accelerator.split_between_processes(list(range(len(dataset)))) as mine, accelerator.autocast():
        part = PosteriorCache.build(model.codec, dataset, model.size, flips=augment == "flip",
                                    indices=mine, batch_size=batch_size, num_workers=num_workers)
    parts = gather_object([part]) if accelerator.num_processes > 1 else [part]
    cache = PosteriorCache.merge(parts, len(dataset))
    accelerator.print(f"cached the image posteriors of {len(cache)} sample(s) x {cache.orientations} orientation(s) "
                      f"({cache.nbytes / 2**20:.1f} MiB) in {time.perf_counter() - began:.1f} s")
    return cache

"""A picture of syntheses for people: for the same test masks, the real image and two samples of every synthesizer.

One row per mask: its colours (the data set's display colours), its real image, then ``samples`` images of each
synthesizer in order, all at the synthesizers' size, separated by white 2-pixel gaps. Mask ``i`` of the scored
list gets the generator :func:`semflow.seeding.make_generator` ``(seed, i)``, as in
:func:`semflow.evaluation.synthesis.evaluate_synthesis`, so the pictures are samples that were scored.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch

from semflow.data.base import SegmentationDataset
from semflow.data.transforms import eval_transform, resize_label
from semflow.models.base import Segmenter
from semflow.rendering import colorize
from semflow.seeding import make_generator

GAP = 2  # pixels of white between cells


def _rgb(image: torch.Tensor) -> np.ndarray:
    """``(3, h, w)`` in ``[0, 1]`` to uint8 ``(h, w, 3)``."""
    return (image.clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)


def _join(cells: Sequence[np.ndarray], axis: int) -> np.ndarray:
    shape = list(cells[0].shape)
    shape[axis] = GAP
    gap = np.full(shape, 255, dtype=np.uint8)
    return np.concatenate([part for cell in cells for part in (cell, gap)][:-1], axis=axis)


@torch.no_grad()
def synthesis_grid(models: Mapping[str, Segmenter], dataset: SegmentationDataset, scored: Sequence[int],
                   steps: int, seed: int = 0, masks: int = 4, samples: int = 2) -> np.ndarray:
    """uint8 ``(rows * h + gaps, (2 + samples * len(models)) * w + gaps, 3)``: ``masks`` evenly spaced masks of the
    ``scored`` indices of ``dataset``; ``h, w``: the first model's size (every model is asked for that size)."""
    first = next(iter(models.values()))
    size = tuple(first.size)
    count = min(masks, len(scored))
    positions = [round(i * (len(scored) - 1) / max(count - 1, 1)) for i in range(count)]
    rows = []
    for position in positions:
        sample = dataset[scored[position]]
        mask = resize_label(sample["label"], size)
        cells = [colorize(mask, first).astype(np.uint8), _rgb(eval_transform(sample, size))]
        for model in models.values():
            images = model.synthesize(mask[None], steps=steps, samples=samples,
                                      generator=[make_generator(seed, position)]).images[0]
            cells += [_rgb(image) for image in images]
        rows.append(_join(cells, axis=1))
    return _join(rows, axis=0)

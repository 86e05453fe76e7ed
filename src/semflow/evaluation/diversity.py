"""Diversity of the images synthesised from one mask: the mean distance between pairs of its samples.

With ``K`` samples per mask, the score of a mask is the mean over its ``K(K-1)/2`` unordered pairs of a
distance between two images. The default distance is the mean absolute pixel difference (pixel L1, in
``[0, 1]`` for images in ``[0, 1]``); any batched distance, LPIPS included, can be plugged in.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import combinations

import torch

from semflow.errors import SemflowInputError

Distance = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``distance(x, y)``: two image batches ``(N, 3, H, W)`` to one distance per pair, shape ``(N,)``."""


def pixel_l1(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference per image pair: ``(N, 3, H, W)`` twice to ``(N,)``, in image units."""
    return (x - y).abs().flatten(start_dim=1).mean(dim=1)


def mean_pairwise_distance(samples: torch.Tensor, distance: Distance | None = None) -> torch.Tensor:
    """Mean distance over all unordered pairs of each mask's samples.

    Pairs are scored one pair index at a time over the whole batch, so memory stays that of ``2 B``
    images whatever ``K`` is.

    Args:
        samples: ``(B, K, 3, H, W)`` images in ``[0, 1]``, ``K >= 2`` samples for each of ``B`` masks.
        distance: batched distance ``(N, 3, H, W), (N, 3, H, W) -> (N,)``; default :func:`pixel_l1`.

    Returns:
        ``(B,)`` mean pairwise distance per mask, on ``samples``' device.
    """
    if samples.ndim != 5:
        raise SemflowInputError(f"samples of shape {tuple(samples.shape)}: expected (B, K, 3, H, W)")
    batch, k = samples.shape[:2]
    if k < 2:
        raise SemflowInputError(f"samples have K={k} images per mask; pairwise diversity needs K >= 2")
    distance = pixel_l1 if distance is None else distance
    per_pair = []
    for i, j in combinations(range(k), 2):
        d = distance(samples[:, i], samples[:, j])
        if tuple(d.shape) != (batch,):
            raise SemflowInputError(f"distance returned shape {tuple(d.shape)}, expected ({batch},): one per pair")
        per_pair.append(d)
    return torch.stack(per_pair).mean(dim=0)

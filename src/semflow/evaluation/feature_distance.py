"""The LPIPS analogue in a judge's feature space: how different two images look to the judge, for diversity.

LPIPS (Zhang et al., CVPR 2018) compares two images by their deep features at several layers: each feature
vector is unit-normalised over its channels, the squared differences are weighted per channel (learned on human
judgements), averaged over positions and summed over layers. Here the layers are the judge's encoder outputs at
1/2, 1/4 and 1/8 scale (:class:`semflow.networks.espnet.ESPNetFeatures`) and the channel weights are all 1 (no
human judgements to learn them from): per layer the distance is in ``[0, 4]``, the sum in ``[0, 12]``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from semflow.networks.espnet import ESPNetFeatures

LAYERS = ("half", "quarter", "eighth")


def unit_normalize(features: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Feature maps ``(N, C, h, w)`` divided by their channel norm at every position (LPIPS's ``normalize_tensor``)."""
    return features / (features.square().sum(dim=1, keepdim=True).sqrt() + eps)


def layered_distance(a: ESPNetFeatures, b: ESPNetFeatures) -> torch.Tensor:
    """``(N,)``: the sum over :data:`LAYERS` of the mean over positions of ``||unit(a) - unit(b)||^2``."""
    total = None
    for layer in LAYERS:
        d = (unit_normalize(getattr(a, layer)) - unit_normalize(getattr(b, layer))).square().sum(dim=1).mean(dim=(1, 2))
        total = d if total is None else total + d
    assert total is not None
    return total


def judge_distance(features: Callable[[torch.Tensor], ESPNetFeatures]) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A batched image distance ``(N, 3, H, W)`` twice to ``(N,)`` for
    :func:`semflow.evaluation.diversity.mean_pairwise_distance`, from a judge's :meth:`~semflow.evaluation.judge.Judge.features`."""

    @torch.no_grad()
    def distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        both = features(torch.cat([x, y]))
        n = x.shape[0]
        first = ESPNetFeatures(*(t[:n] for t in (both.logits, both.half, both.quarter, both.eighth)))
        second = ESPNetFeatures(*(t[n:] for t in (both.logits, both.half, both.quarter, both.eighth)))
        return layered_distance(first, second).to(x.device)

    return distance

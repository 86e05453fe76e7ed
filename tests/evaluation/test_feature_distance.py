"""The LPIPS analogue in a judge's features: zero for identical images, closed forms on hand-made features."""

from __future__ import annotations

import pytest
import torch

from semflow.evaluation.diversity import mean_pairwise_distance
from semflow.evaluation.feature_distance import judge_distance, layered_distance, unit_normalize
from semflow.networks.espnet import ESPNet, ESPNetFeatures


def features(half: torch.Tensor, quarter: torch.Tensor, eighth: torch.Tensor) -> ESPNetFeatures:
    return ESPNetFeatures(logits=torch.zeros(half.shape[0], 1, 1, 1), half=half, quarter=quarter, eighth=eighth)


def test_opposite_and_orthogonal_unit_vectors() -> None:
    """Opposite directions at every position: 4 per layer; orthogonal ones: 2; scale does not matter."""
    e0, e1 = torch.zeros(1, 2, 3, 3), torch.zeros(1, 2, 3, 3)
    e0[:, 0], e1[:, 1] = 1.0, 5.0
    a = features(e0, e0, e0)
    assert layered_distance(a, features(-e0, -3 * e0, e1)).item() == pytest.approx(4 + 4 + 2)
    assert layered_distance(a, features(7 * e0, e0, e0)).item() == pytest.approx(0.0, abs=1e-12)
    torch.testing.assert_close(unit_normalize(3 * e1).square().sum(dim=1), torch.ones(1, 3, 3))


def test_identical_samples_have_no_diversity_and_different_ones_have_some() -> None:
    torch.manual_seed(0)
    network = ESPNet(5).eval()
    distance = judge_distance(lambda x: network.forward_features(x))
    image = torch.rand(2, 1, 3, 16, 16)
    same = mean_pairwise_distance(image.expand(2, 3, 3, 16, 16), distance=distance)
    assert torch.allclose(same, torch.zeros(2), atol=1e-6)
    other = mean_pairwise_distance(torch.rand(2, 3, 3, 16, 16), distance=distance)
    assert (other > 0.01).all() and (other <= 12).all()

"""Mean pairwise distance of the samples of each mask, on hand-computed cases."""

from __future__ import annotations

import pytest
import torch

from semflow.evaluation.diversity import mean_pairwise_distance
from semflow.errors import SemflowInputError


def test_identical_samples_give_zero() -> None:
    image = torch.rand(2, 1, 3, 8, 8)
    assert torch.equal(mean_pairwise_distance(image.expand(2, 4, 3, 8, 8)), torch.zeros(2))


def test_constant_offset_gives_that_constant() -> None:
    base = torch.rand(3, 3, 5, 7) * 0.5
    samples = torch.stack([base, base + torch.tensor([0.1, 0.2, 0.3]).view(3, 1, 1, 1)], dim=1)
    torch.testing.assert_close(mean_pairwise_distance(samples), torch.tensor([0.1, 0.2, 0.3]))


def test_three_samples_by_hand() -> None:
    # Constant images 0, 0.2, 0.8: pairs differ by 0.2, 0.8 and 0.6, mean 1.6 / 3.
    samples = torch.tensor([0.0, 0.2, 0.8]).view(1, 3, 1, 1, 1).expand(1, 3, 3, 4, 4)
    torch.testing.assert_close(mean_pairwise_distance(samples), torch.tensor([1.6 / 3]))


def test_custom_distance_is_used() -> None:
    calls = []

    def first_pixel_gap(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        calls.append(x.shape)
        return (x[:, 0, 0, 0] - y[:, 0, 0, 0]).abs() * 10

    samples = torch.zeros(2, 3, 3, 4, 4)
    samples[:, 1, 0, 0, 0] = 0.5  # only sample 1 differs, in one pixel: pairs (0,1), (1,2) give 5, (0,2) gives 0
    torch.testing.assert_close(mean_pairwise_distance(samples, first_pixel_gap), torch.full((2,), 10 / 3))
    assert calls == [torch.Size([2, 3, 4, 4])] * 3


def test_distance_of_wrong_shape_raises() -> None:
    with pytest.raises(SemflowInputError, match="distance returned shape"):
        mean_pairwise_distance(torch.zeros(2, 2, 3, 4, 4), lambda x, y: (x - y).sum())


@pytest.mark.parametrize("shape", [(2, 1, 3, 4, 4), (2, 0, 3, 4, 4)])
def test_fewer_than_two_samples_raise(shape: tuple[int, ...]) -> None:
    with pytest.raises(SemflowInputError, match="K >= 2"):
        mean_pairwise_distance(torch.zeros(shape))


def test_wrong_rank_raises() -> None:
    with pytest.raises(SemflowInputError, match=r"\(B, K, 3, H, W\)"):
        mean_pairwise_distance(torch.zeros(2, 3, 4, 4))

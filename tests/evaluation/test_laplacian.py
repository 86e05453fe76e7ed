import pytest
import torch

from semflow.errors import SemflowInputError
from semflow.evaluation.laplacian import energy_ratio, laplacian_energy


def test_constant_and_linear_images_have_no_energy():
    yy, xx = torch.meshgrid(torch.arange(8.0), torch.arange(9.0), indexing="ij")
    images = torch.stack([torch.full((3, 8, 9), 0.4), torch.stack([0.1 * xx, 0.05 * yy, 0.02 * (xx + yy)])])
    torch.testing.assert_close(laplacian_energy(images), torch.zeros(2))


@pytest.mark.parametrize("a", [0.1, 0.25])
def test_a_checkerboard_has_eight_times_its_amplitude(a):
    yy, xx = torch.meshgrid(torch.arange(6), torch.arange(7), indexing="ij")
    board = a * (1 - 2 * ((xx + yy) % 2).float())  # +a and -a
    energy = laplacian_energy(board.expand(2, 3, 6, 7) + 0.5)  # an offset changes nothing
    torch.testing.assert_close(energy, torch.full((2,), 8 * a))


def test_each_image_is_scored_alone_and_the_ratio_compares_means():
    flat = torch.zeros(1, 3, 5, 5)
    stripes = torch.zeros(1, 3, 5, 5)
    stripes[..., ::2] = 1.0  # columns 1, 0, 1, 0, 1: |Laplacian| = 2 on every interior pixel
    torch.testing.assert_close(laplacian_energy(torch.cat([flat, stripes])), torch.tensor([0.0, 2.0]))
    assert energy_ratio(torch.cat([flat, stripes]), torch.cat([stripes, stripes])) == pytest.approx(0.5)
    with pytest.raises(SemflowInputError, match="no Laplacian energy"):
        energy_ratio(stripes, flat)
    with pytest.raises(SemflowInputError, match="expected"):
        laplacian_energy(torch.zeros(3, 5, 5))

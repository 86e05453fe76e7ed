"""TAEF2 with the real released weights on real CamVid test images (skipped where ../shared is absent).

The full split's numbers (image PSNR and the codec ceiling on masks) come from ``bench/codec_ceiling.py``;
these tests check a fixed tenth (images) and twentieth (masks) of the split so that they run in seconds.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from semflow.codecs import TAEF2Codec
from semflow.data.transforms import resize_image, resize_label
from semflow.io import read_image, read_label
from semflow.pseudomask.palette import Palette
from tiny_autoencoders import _one_thread  # noqa: F401 - fixture

SHARED = Path(__file__).resolve().parents[3] / "shared"
WEIGHTS = SHARED / "weights" / "taef2"
CAMVID = SHARED / "data" / "camvid"
SIZE = (96, 128)  # (h, w): CamVid's 160x120 scaled to 128x96, a multiple of TAEF2's factor 8
IGNORE = 11

pytestmark = pytest.mark.skipif(
    not (WEIGHTS / "taef2_encoder.pth").is_file() or not (CAMVID / "test.txt").is_file(),
    reason="../shared (real TAEF2 weights and CamVid) is absent",
)


@pytest.fixture(scope="module")
def camvid_test_subset() -> tuple[torch.Tensor, torch.Tensor]:
    """Every 10th CamVid test pair at 128x96: images ``(24, 3, 96, 128)`` in ``[0, 1]``, labels ``(24, 96, 128)``."""
    pairs = [line.split() for line in (CAMVID / "test.txt").read_text().splitlines() if line.strip()][::10]
    images = torch.stack([read_image(CAMVID / image) for image, _ in pairs]).float() / 255.0
    labels = torch.stack([read_label(CAMVID / label) for _, label in pairs])
    return resize_image(images, SIZE), resize_label(labels, SIZE)


def _round_trip(codec: TAEF2Codec, x: torch.Tensor, mask: bool = False, batch: int = 8) -> torch.Tensor:
    """``D(E(x))`` in batches of 8 (faster than one large batch on small CPUs)."""
    encode = codec.encode_mask if mask else codec.encode_image
    return torch.cat([codec.decode(encode(chunk)) for chunk in x.split(batch)])


@torch.no_grad()
def test_taef2_image_psnr_on_camvid_test(camvid_test_subset: tuple[torch.Tensor, torch.Tensor]) -> None:
    images, _ = camvid_test_subset
    codec = TAEF2Codec(WEIGHTS)
    z = codec.encode_image(images[:2])
    assert z.shape == (2, 32, 12, 16) and not bool(codec.image_posterior(images[:2]).std.any())
    decoded = _round_trip(codec, images).clamp(0, 1)  # PSNR of the picture as saved, in [0, 1]
    mse = ((decoded - images) ** 2).flatten(1).mean(1)
    psnr = float((10 * torch.log10(1.0 / mse)).mean())
    # Measured: 29.7 dB on this subset and on the whole split (bench/codec_ceiling.py).
    assert psnr >= 28.0, f"TAEF2 image PSNR {psnr:.2f} dB < 28 dB: the architecture or ranges are wrong"


@torch.no_grad()
def test_taef2_keeps_most_pseudo_mask_pixels(camvid_test_subset: tuple[torch.Tensor, torch.Tensor]) -> None:
    labels = camvid_test_subset[1][::2]  # every 20th pair: 12 masks
    codec = TAEF2Codec(WEIGHTS)
    valid = labels != IGNORE
    accuracy = {}
    for name, palette in (("authors", Palette(11, 6, 50, IGNORE)), ("spread", Palette.spread(11, IGNORE))):
        masks = palette.encode(labels) / 255.0
        predicted = palette.decode(_round_trip(codec, masks, mask=True) * 255.0)
        accuracy[name] = float((predicted == labels)[valid].float().mean())
    # Measured on this subset: 0.89 (authors' k=6, s=50) and 0.94 (spread k=3, s=127) pixel accuracy.
    assert accuracy["authors"] > 0.8 and accuracy["spread"] > 0.9, accuracy
    assert accuracy["spread"] > accuracy["authors"], accuracy

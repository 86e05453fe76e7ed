"""Pixel space: the identity codec, up to the change of range ``[0, 1] -> [-1, 1]``."""

from __future__ import annotations

from typing import Any

import torch

from semflow.codecs.base import Codec, Posterior


class PixelCodec(Codec):
    """``E(x) = 2x - 1`` and ``D(z) = (z + 1) / 2``: the flow runs on the pixels themselves.

    A pseudo-mask perturbation of ``beta`` pixel levels becomes ``2 * beta / 255`` in ``z`` units.
    """

    kind = "pixel"

    @property
    def latent_channels(self) -> int:
        return 3

    @property
    def downsample(self) -> int:
        return 1

    def image_posterior(self, images: torch.Tensor) -> Posterior:
        mean = images * 2.0 - 1.0
        return Posterior(mean=mean, std=torch.zeros_like(mean))

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return (latents + 1.0) / 2.0

    def get_config(self) -> dict[str, Any]:
        return {}

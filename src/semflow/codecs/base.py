"""The codec interface E/D that carries images and pseudo-masks to the flow's space and back.

SemFlow runs its flow between ``z0 = E(image)`` and ``z1 = E(mask + noise)``. A codec is that E/D pair:
pixel space (identity up to a range change) or a pretrained autoencoder's latent space.

Conventions every codec follows:
    * images and pseudo-masks enter as float RGB, shape ``(B, 3, H, W)``, nominal range ``[0, 1]``
      (pseudo-masks with their perturbation may leave it slightly; codecs must not clip them);
    * :meth:`decode` returns the same nominal ``[0, 1]`` range, unclamped;
    * the image encoder is a distribution ``N(mean, std^2)`` (``std == 0`` for deterministic codecs), so
      training can sample it and a cache can keep ``(mean, std)`` exactly; masks are encoded by the mode;
    * codecs follow the device and dtype of their parameters/inputs; they never choose a device.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn


@dataclass
class Posterior:
    """A diagonal Gaussian over latents, each tensor of shape ``(B, C, h, w)``."""

    mean: torch.Tensor
    std: torch.Tensor

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``mean + std * eps`` (returns ``mean`` itself when ``std`` is all zero)."""
        if not bool(self.std.any()):
            return self.mean
        eps = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + self.std * eps


class Codec(nn.Module, ABC):
    """Encoder/decoder pair E/D. Subclasses register a ``kind`` name in :mod:`semflow.codecs`."""

    kind: ClassVar[str]

    @property
    @abstractmethod
    def latent_channels(self) -> int:
        """Channels of the latent ``z``."""

    @property
    @abstractmethod
    def downsample(self) -> int:
        """Spatial factor between pixels and latents (``H = downsample * h``)."""

    @abstractmethod
    def image_posterior(self, images: torch.Tensor) -> Posterior:
        """Encode images ``(B, 3, H, W)`` in ``[0, 1]`` to a posterior over ``(B, C, H/f, W/f)`` latents."""

    @abstractmethod
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Decode latents ``(B, C, h, w)`` to RGB ``(B, 3, h*f, w*f)``, nominal range ``[0, 1]``, unclamped."""

    def encode_image(
        self, images: torch.Tensor, sample: bool = False, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``z0``: the posterior's mode, or a sample of it when ``sample`` (training, as the authors do)."""
        posterior = self.image_posterior(images)
        return posterior.sample(generator) if sample else posterior.mean

    def encode_mask(self, masks: torch.Tensor) -> torch.Tensor:
        """``z1``: the mode of the posterior of (perturbed) pseudo-masks ``(B, 3, H, W)`` in ``~[0, 1]``."""
        return self.image_posterior(masks).mean

    def latent_shape(self, height: int, width: int) -> tuple[int, int, int]:
        """Latent shape ``(C, h, w)`` for an ``H x W`` input; raises if ``H, W`` are not multiples of f."""
        f = self.downsample
        if height % f or width % f:
            from semflow.errors import SemflowInputError

            raise SemflowInputError(f"size {height}x{width} must be a multiple of the codec's factor {f}")
        return self.latent_channels, height // f, width // f

    @abstractmethod
    def get_config(self) -> dict[str, Any]:
        """JSON-serialisable arguments that, with :meth:`save_weights`, rebuild this codec."""

    def save_weights(self, directory: Path) -> None:
        """Write whatever weights the codec needs into ``directory`` (default: none)."""

    @classmethod
    def from_saved(cls, config: dict[str, Any], directory: Path) -> Codec:
        """Rebuild a codec from :meth:`get_config` and the folder :meth:`save_weights` wrote."""
        return cls(**config)

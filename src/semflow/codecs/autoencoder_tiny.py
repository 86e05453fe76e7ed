"""diffusers ``AutoencoderTiny`` (a TAESD checkpoint in diffusers layout, e.g. ``madebyollin/taesd``) as a codec.

TAESD is deterministic, so the posterior has ``std = 0``. Its raw latents already approximate the *scaled*
latents of the autoencoder it was distilled from, which is why its ``config.json`` says ``scaling_factor``
1.0; ``latent_magnitude``/``latent_shift`` only pack latents into ``uint8`` images and are not used here.
The decoder soft-clamps its input latent to ``(-3, 3)`` (``tanh(z/3)*3``) by design, so latents beyond about
``+-3`` saturate; its RGB output itself is not clamped.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderTiny

from semflow.codecs.base import Posterior
from semflow.codecs.diffusers_vae import DiffusersVAECodec
from semflow.errors import SemflowInputError


class AutoencoderTinyCodec(DiffusersVAECodec):
    """``AutoencoderTiny`` read from a local folder (``config.json`` + ``diffusion_pytorch_model.safetensors``).

    Args:
        path: the autoencoder's folder, or a pipeline folder holding it in ``vae/``.
    """

    kind = "autoencoder-tiny"
    model_class = AutoencoderTiny

    def __init__(self, path: str | Path | None = None) -> None:
        super().__init__(path)
        config = self.vae.config
        down = 2 ** (len(config.num_encoder_blocks) - 1)
        up = config.upsampling_scaling_factor ** (len(config.num_decoder_blocks) - 1)
        if down != up:
            raise SemflowInputError(f"{self.kind}: {path}: encoder downsamples by {down} but decoder upsamples by {up}")
        self._downsample = down

    @property
    def downsample(self) -> int:
        return self._downsample

    def image_posterior(self, images: torch.Tensor) -> Posterior:
        """Images ``(B, 3, H, W)`` in ``[0, 1]`` -> a point mass (``std = 0``) at ``z`` ``(B, C, H/f, W/f)``."""
        mean = self.normalise(self.vae.encode(self.to_diffusers(images)).latents)
        return Posterior(mean=mean, std=torch.zeros_like(mean))

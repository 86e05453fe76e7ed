"""diffusers ``AutoencoderKL`` (for example Stable Diffusion 1.5's VAE) as a SemFlow codec.

Its encoder is a diagonal Gaussian. As the SemFlow authors do, training samples the image latent ``z0``
from it and takes the mode (the mean) for the mask latent ``z1``; evaluation takes the mode for both
(:meth:`Codec.encode_image` with ``sample=False``). ``z`` is normalised by the model's ``scaling_factor``
(and ``shift_factor`` where the config has one), see :mod:`semflow.codecs.diffusers_vae`.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL

from semflow.codecs.base import Posterior
from semflow.codecs.diffusers_vae import DiffusersVAECodec


class AutoencoderKLCodec(DiffusersVAECodec):
    """``AutoencoderKL`` read from a local folder (``config.json`` + ``diffusion_pytorch_model.safetensors``).

    Args:
        path: the autoencoder's folder, e.g. ``stable-diffusion-v1-5/vae``, or the pipeline folder above it.
    """

    kind = "autoencoder-kl"
    model_class = AutoencoderKL

    @property
    def downsample(self) -> int:
        # Every down block but the last halves the resolution (diffusers' ``vae_scale_factor``).
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    def image_posterior(self, images: torch.Tensor) -> Posterior:
        """Images ``(B, 3, H, W)`` in ``[0, 1]`` -> ``N(mean, std^2)`` over normalised ``z`` ``(B, C, H/f, W/f)``."""
        dist = self.vae.encode(self.to_diffusers(images)).latent_dist
        return Posterior(mean=self.normalise(dist.mean), std=dist.std * abs(self.scaling_factor))

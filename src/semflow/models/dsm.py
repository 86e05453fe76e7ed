"""DSM: a conditional diffusion segmenter, the baseline SemFlow is compared with (paper, Table 2).

The mask latent ``x0 = E(palette(mask) + U(-beta, beta))`` (SemFlow's ``z1``) is diffused with a DDPM noise
schedule, ``x_k = sqrt(abar_k) x0 + sqrt(1 - abar_k) eps``; the network sees ``[x_k, E(image)]`` concatenated
on the channel axis (``2C`` channels in, ``C`` out) and the diffusion timestep ``k`` (0..999), and predicts
``eps`` (MSE). Segmentation starts from Gaussian noise and denoises with diffusers' ``DDIMScheduler``
(deterministic, eta = 0) or ``DDPMScheduler`` (ancestral, seeded) in ``N`` steps, then decodes the mask latent
to classes by the nearest palette colour, exactly as SemFlow does.

Timesteps are spaced ``trailing`` (``999, 999 - 1000/N, ...``): with the default ``leading`` spacing one step
would start at ``k = 0``, from noise the network was never trained to see there. ``clip_sample`` is off:
latents are not bounded to ``[-1, 1]``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from diffusers import DDIMScheduler, DDPMScheduler
from torch import nn
from torch.nn import functional as F

from semflow.codecs import Codec, Posterior
from semflow.config import ModelConfig
from semflow.data.base import DatasetInfo
from semflow.errors import SemflowInputError
from semflow.images import as_images
from semflow.models.base import SegmentationOutput, Segmenter, TrainingTime
from semflow.seeding import make_generator

# diffusers' DDPM defaults (linear betas 1e-4..0.02 over 1000 steps) but for the two settings above.
DEFAULT_SCHEDULER: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_schedule": "linear",
    "beta_start": 1e-4,
    "beta_end": 0.02,
    "prediction_type": "epsilon",
    "clip_sample": False,
    "timestep_spacing": "trailing",
}
SAMPLERS = {"ddim": DDIMScheduler, "ddpm": DDPMScheduler}


class DiffusionSegmenter(Segmenter, method="dsm"):
    """Segment by denoising a mask latent conditioned on the image latent (``model.method=dsm``).

    Shares :class:`~semflow.models.base.Segmenter`'s codec, palette, files and evaluation; the network is called
    as ``network(cat([x_k, z_image]), k)`` with ``k`` the diffusion timestep (never SemFlow's ``1000 * t``).
    """

    SOLVERS: ClassVar[tuple[str, ...]] = tuple(SAMPLERS)
    DEFAULT_SOLVER: ClassVar[str | None] = "ddim"

    def __init__(self, codec: Codec, network: nn.Module, config: ModelConfig, dataset: DatasetInfo) -> None:
        super().__init__(codec, network, config, dataset)
        self.scheduler_config = {**DEFAULT_SCHEDULER, **config.scheduler_args}
        try:
            self.noise_schedule = DDPMScheduler(**self.scheduler_config)
        except (TypeError, ValueError, NotImplementedError) as err:
            raise SemflowInputError(f"model.scheduler_args {config.scheduler_args} do not make a DDPMScheduler: "
                                    f"{err}") from None
        if self.noise_schedule.config.prediction_type != "epsilon":
            raise SemflowInputError("model.scheduler_args.prediction_type: the DSM baseline predicts epsilon only")
        # diffusers reads some settings (timestep_spacing) only in set_timesteps: check them now, not after training.
        for name, sampler in SAMPLERS.items():
            try:
                sampler.from_config(self.scheduler_config).set_timesteps(1)
            except (TypeError, ValueError, NotImplementedError) as err:
                raise SemflowInputError(f"model.scheduler_args {config.scheduler_args} do not make a {name} "
                                        f"sampler: {err}") from None

    @classmethod
    def network_channels(cls, codec: Codec, dataset: DatasetInfo, config: ModelConfig) -> tuple[int, int]:
        """``[x_k, z_image]`` in (``2C``), ``eps`` out (``C``)."""
        return 2 * codec.latent_channels, codec.latent_channels

    def predict_noise(self, network: nn.Module, x_k: torch.Tensor, z_image: torch.Tensor,
                      k: torch.Tensor) -> torch.Tensor:
        """``eps`` ``(B, C, h, w)`` from the noisy mask latent ``x_k`` and the image latent (both ``(B, C, h, w)``)
        at diffusion timesteps ``k`` ``(B,)``."""
        out = network(torch.cat([x_k, z_image], dim=1), k)
        return out.sample if hasattr(out, "sample") else out

    def posterior_training_loss(
        self,
        posterior: Posterior,
        labels: torch.Tensor,
        trainable: nn.Module | None = None,
        generator: torch.Generator | None = None,
        at: TrainingTime | None = None,
    ) -> torch.Tensor:
        """Epsilon-prediction MSE at ``k ~ U{0, ..., T-1}`` on one batch (``trainable``: the network to train,
        a distributed wrapper of :attr:`network`; default ours)."""
        network = self.network if trainable is None else trainable
        with torch.no_grad():
            z_image = posterior.sample(generator)
            x0 = self.encode_masks(labels, generator=generator)
        eps = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        k = torch.randint(0, self.noise_schedule.config.num_train_timesteps, (x0.shape[0],),
                          generator=generator, device=x0.device)
        x_k = self.noise_schedule.add_noise(x0, eps, k)
        dtype = next(network.parameters()).dtype
        prediction = self.predict_noise(network, x_k.to(dtype), z_image.to(dtype), k)
        return F.mse_loss(prediction.float(), eps.float())

    @torch.no_grad()
    def segment(self, images: torch.Tensor, steps: int = 25, solver: str | None = None,
                return_trajectory: bool = False, seed: int = 0,
                latents: torch.Tensor | None = None) -> SegmentationOutput:
        """Segment by ``steps`` denoising steps of ``solver`` (``ddim`` or ``ddpm``).

        Args:
            images: ``(B, 3, H, W)`` in ``[0, 1]``, any size.
            steps: denoising steps ``1 <= N <= num_train_timesteps`` (timesteps ``999, 999 - 1000/N, ...``).
            solver: ``ddim`` (deterministic given the start noise) or ``ddpm`` (ancestral sampling).
            return_trajectory: also return the decoded pseudo-mask of ``x`` at the start (the noise) and after
                each step, ``(N+1, B, 3, h, w)`` as SemFlow's.
            latents: :meth:`encode_input` of ``images``, when already computed.
            seed: seeds the start noise and DDPM's noise (drawn on the CPU, so alike on every device).
        """
        solver = self.check_solver(solver)
        train_steps = self.noise_schedule.config.num_train_timesteps
        if not 1 <= steps <= train_steps:
            raise SemflowInputError(f"steps={steps}; expected a whole number from 1 to the {train_steps} diffusion "
                                    "timesteps the model was trained with")
        images = as_images(images)
        z_image = self.encode_input(images) if latents is None else latents
        in_size = (int(images.shape[-2]), int(images.shape[-1]))
        scheduler = SAMPLERS[solver].from_config(self.scheduler_config)
        scheduler.set_timesteps(steps, device=z_image.device)
        generator = make_generator(seed)
        noise = torch.randn(z_image.shape, generator=generator, dtype=torch.float32)
        sample = (noise * scheduler.init_noise_sigma).to(z_image)
        states = [self.decode_pseudo_masks(sample).float()] if return_trajectory else []
        for k in scheduler.timesteps:
            eps = self.predict_noise(self.network, sample, z_image, k.expand(sample.shape[0]))
            sample = scheduler.step(eps.float(), k, sample.float(), generator=generator).prev_sample.to(z_image)
            if return_trajectory:
                states.append(self.decode_pseudo_masks(sample).float())
        return self._labels_from_mask_latent(sample, in_size, torch.stack(states) if states else None)

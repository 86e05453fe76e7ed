"""``spade``: a SPADE GAN (Park et al. 2019), the GAN family the SemFlow paper's Table 1 compares with.

A generator with spatially-adaptive normalisation from the mask and a noise vector (multi-modal output) makes
the image latent in one pass; a multi-scale PatchGAN discriminator sees (image, mask) pairs
(:mod:`semflow.networks.spade`). Losses as SPADE's: the hinge loss for both players, and feature matching
(L1 between the discriminator's stage outputs on real and generated pairs, weight ``feature_matching``) for the
generator. SPADE's VGG perceptual term needs ImageNet weights we cannot download, and its image encoder (a VAE
for style) is left out: the noise vector is the only source of variety, as in SPADE without an encoder.

**How one training loop trains both players.** The loop is method-agnostic: one loss, one backward, one optimizer
step (so checkpoints, resume, EMA, accumulation and distributed training work unchanged). The loss is the sum of
the discriminator's and the generator's, built so that each moves only its own player: the discriminator sees the
generated image detached (its loss cannot reach the generator), and the generator's terms run through the
discriminator with its parameters detached (``torch.func.functional_call``; they cannot reach the discriminator).
Both gradients are taken at the same weights, so this is the simultaneous form of GAN training rather than
SPADE's alternating one (one step of each per batch either way). The two players get their own learning rates and
Adam betas through :meth:`SpadeSynthesizer.param_groups` (SPADE's two-time-scale rule and ``betas = (0, 0.9)``).
We chose this over an optimizer per player because a second optimizer would need a second schedule, a second
gradient clip and its own checkpoint state in a loop that every method shares.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from semflow.codecs import Codec, Posterior
from semflow.config import ModelConfig, from_dict
from semflow.data.base import DatasetInfo
from semflow.data.transforms import resize_label
from semflow.errors import SemflowInputError
from semflow.models.base import Segmenter, TrainingTime
from semflow.models.mask_input import one_hot_mask
from semflow.models.noise_flow import mask_generators
from semflow.models.semflow import SynthesisOutput

# SPADE's Adam betas with the two-time-scale update rule.
BETAS = (0.0, 0.9)


@dataclass
class SpadeOptions:
    """``model.method_args`` of a ``spade`` model.

    Args:
        feature_matching: weight of the feature-matching loss (SPADE: 10).
        generator_lr: the generator's learning rate as a multiple of ``train.lr``.
        discriminator_lr: the discriminator's, the same way. SPADE trains at 1e-4 and 4e-4 (its 2e-4 halved and
            doubled: two time scales); at ``train.lr = 1e-3`` (bench paper's) these defaults give 2e-4 and 8e-4,
            SPADE's 1:4 ratio at twice its rates, for a budget of a few thousand steps.
    """

    feature_matching: float = 10.0
    generator_lr: float = 0.2
    discriminator_lr: float = 0.8

    def __post_init__(self) -> None:
        for name in ("feature_matching", "generator_lr", "discriminator_lr"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0 and (value > 0 or name == "feature_matching")):
                raise SemflowInputError(f"model.method_args.{name}={value}; expected a finite number "
                                        f"{'>= 0' if name == 'feature_matching' else '> 0'}")


@dataclass
class GanLosses:
    """The terms of one batch, each a scalar: the discriminator's hinge loss, the generator's hinge (adversarial)
    loss and its feature-matching loss (unweighted)."""

    discriminator: torch.Tensor
    adversarial: torch.Tensor
    feature_matching: torch.Tensor


def gan_losses(d_real: list[list[torch.Tensor]], d_fake: list[list[torch.Tensor]],
               g_fake: list[list[torch.Tensor]]) -> GanLosses:
    """SPADE's losses from the discriminator's outputs (per scale, per stage; the last stage is the logits), each
    averaged over scales: hinge ``relu(1 - D(real)) + relu(1 + D(fake))`` for the discriminator, ``-D(fake)`` for
    the generator, and the L1 distance of every earlier stage's output between generated and real pairs."""
    scales = len(d_real)
    disc = sum(F.relu(1 - r[-1]).mean() + F.relu(1 + f[-1]).mean() for r, f in zip(d_real, d_fake)) / scales
    adversarial = -sum(g[-1].mean() for g in g_fake) / scales
    matching = sum(F.l1_loss(g, r.detach()) for rs, gs in zip(d_real, g_fake) for r, g in zip(rs[:-1], gs[:-1]))
    return GanLosses(discriminator=disc, adversarial=adversarial, feature_matching=matching / scales)


class SpadeSynthesizer(Segmenter, method="spade"):
    """Synthesize images from masks with a SPADE generator (``model.method=spade``; network kind ``spade``).

    The network (:class:`semflow.networks.spade.SpadeGAN`) holds the generator and the discriminator; it reads the
    mask as class fractions per latent cell and makes latents that the codec decodes.
    """

    SOLVERS: ClassVar[tuple[str, ...]] = ()
    can_segment: ClassVar[bool] = False
    can_synthesize: ClassVar[bool] = True

    def __init__(self, codec: Codec, network: nn.Module, config: ModelConfig, dataset: DatasetInfo) -> None:
        self.options = from_dict(SpadeOptions, config.method_args, "model.method_args")
        super().__init__(codec, network, config, dataset)

    @classmethod
    def network_channels(cls, codec: Codec, dataset: DatasetInfo, config: ModelConfig) -> tuple[int, int]:
        """Class fractions in (``K``), latents out (``C``)."""
        return dataset.num_classes, codec.latent_channels

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """The generator and the discriminator at their own learning rates, SPADE's Adam betas for both."""
        return [
            {"params": list(self.network.generator.parameters()), "lr": lr * self.options.generator_lr, "betas": BETAS},
            {"params": list(self.network.discriminator.parameters()), "lr": lr * self.options.discriminator_lr,
             "betas": BETAS},
        ]

    def parameter_counts(self) -> dict[str, int]:
        """The generator's parameters (what synthesizes) and the discriminator's (training only)."""
        return {part: sum(p.numel() for p in getattr(self.network, part).parameters())
                for part in ("generator", "discriminator")}

    def mask_input(self, labels: torch.Tensor) -> torch.Tensor:
        """Class maps ``(B, h, w)`` at the model size to class fractions per latent cell ``(B, K, h/f, w/f)``."""
        return one_hot_mask(labels, self.dataset.num_classes, self.dataset.ignore_index, self.codec.downsample)

    def losses(self, posterior: Posterior, labels: torch.Tensor, trainable: nn.Module | None = None,
               generator: torch.Generator | None = None) -> GanLosses:
        """The loss terms of one batch (:func:`gan_losses`); draws the real latents, then the noise, from ``generator``."""
        network = self.network if trainable is None else trainable
        with torch.no_grad():
            real = posterior.sample(generator)
            mask = self.mask_input(labels.to(real.device))
        noise = torch.randn((real.shape[0], self.network.config.noise_channels), generator=generator,
                            device=real.device, dtype=real.dtype)
        dtype = next(network.parameters()).dtype
        _, d_real, d_fake, g_fake = network(mask.to(dtype), noise.to(dtype), real.to(dtype))
        return gan_losses(d_real, d_fake, g_fake)

    def posterior_training_loss(
        self,
        posterior: Posterior,
        labels: torch.Tensor,
        trainable: nn.Module | None = None,
        generator: torch.Generator | None = None,
        at: TrainingTime | None = None,
    ) -> torch.Tensor:
        """Discriminator hinge + generator hinge + ``feature_matching`` x feature matching, each term reaching only
        its own player's weights (module docstring).

        Args:
            posterior: ``codec.image_posterior(images)``: ``mean``, ``std`` ``(B, C, h/f, w/f)``.
            labels: ``(B, h, w)`` class maps at the model size.
            trainable: the network to train (a distributed wrapper of :attr:`network`); default ours.
            generator: random source of the posterior sample and the noise.
            at: where training stands (the rival's loss is the same throughout).
        """
        terms = self.losses(posterior, labels, trainable, generator)
        return terms.discriminator + terms.adversarial + self.options.feature_matching * terms.feature_matching

    @torch.no_grad()
    def synthesize(
        self,
        labels: torch.Tensor,
        steps: int = 1,
        samples: int = 1,
        seed: int | None = None,
        solver: str | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
    ) -> SynthesisOutput:
        """Synthesize ``samples`` images per mask in one generator pass each, from a fresh noise vector each.

        Args:
            labels: ``(B, H, W)`` class maps, any size (resized to the model size by nearest neighbour).
            steps: ignored (one pass); accepted so that every synthesizer is called alike.
            samples: images per mask, ``K >= 1``.
            seed: makes the noise reproducible (drawn on the CPU, so alike on any device).
            solver: must be ``None`` (a GAN has no solver).
            generator: a CPU generator, or a list of ``B`` of them, one per mask.

        Returns:
            ``images`` ``(B, K, 3, h, w)`` in ``[0, 1]`` at the model size.
        """
        if solver is not None:
            raise SemflowInputError(f"solver {solver!r}: a spade model synthesizes in one generator pass; no solver "
                                    "applies")
        generators = mask_generators(labels, samples, seed, generator)
        p = self._param()
        repeated = resize_label(labels.long().cpu(), self.size).repeat_interleave(samples, dim=0)
        mask = self.mask_input(repeated).to(device=p.device, dtype=p.dtype)
        width = self.network.config.noise_channels
        noise = torch.cat([torch.randn((samples, width), generator=g) for g in generators]).to(p.device, p.dtype)
        images = self.codec.decode(self.network.generator(mask, noise)).float().clamp(0, 1)
        return SynthesisOutput(images=images.reshape(labels.shape[0], samples, *images.shape[1:]))

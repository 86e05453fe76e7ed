"""``noise-flow``: a mask-conditioned rectified flow from Gaussian noise to the image, SemFlow's synthesis rival.

The recipe of today's diffusion-based semantic image synthesis (SDM, ControlNet-style conditioning) on SemFlow's
own codec, path, solver and backbone, so the comparison is of the idea, not of the parts:

* Path: ``z_t = (1 - t) z0 + t eps`` between the image latent ``z0 = E(image)`` (``t = 0``, as in SemFlow) and
  Gaussian noise ``eps ~ N(0, I)`` (``t = 1``, where SemFlow has the mask); the network regresses the velocity
  ``eps - z0`` (MSE) at ``t ~ U(0, 1)``, seeing ``1000 t`` (:class:`semflow.flow.velocity.VelocityModel`).
* Condition: the mask enters the same UNet as extra input channels, one per class (class fractions per latent
  cell, :func:`semflow.models.mask_input.one_hot_mask`) and one that says a mask is given. Training drops the
  whole condition (all zeros) with probability ``mask_dropout``, so one network also learns the unconditional
  field, for classifier-free guidance.
* Synthesis: Euler (or Heun, midpoint) from ``t = 1`` (fresh noise per sample) to ``t = 0``, then ``D``. With
  guidance ``w`` the field is ``v_uncond + w (v_cond - v_uncond)`` (``w = 1``: the conditional field alone, one
  network call a step; ``w = 0``: the unconditional one).

It synthesizes only: there is no path from an image to a mask (``can_segment = False``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import torch
from torch import nn

from semflow.codecs import Codec, Posterior
from semflow.config import ModelConfig, from_dict
from semflow.data.base import DatasetInfo
from semflow.data.transforms import resize_label
from semflow.errors import SemflowInputError
from semflow.flow.path import flow_matching_loss, sample_path, sample_time
from semflow.flow.solver import STEPPERS, ODESolver, time_grid
from semflow.flow.velocity import VelocityModel
from semflow.models.base import Segmenter, TrainingTime
from semflow.models.mask_input import one_hot_mask
from semflow.models.semflow import SynthesisOutput
from semflow.seeding import make_generator


@dataclass
class NoiseFlowOptions:
    """``model.method_args`` of a ``noise-flow`` model.

    Args:
        mask_dropout: probability in ``[0, 1)`` that a training sample's mask is dropped (the condition all zeros),
            so that the network also learns the unconditional field (classifier-free guidance; 0: never, and
            guidance other than 1 is refused). SDM and most CFG papers drop 10-20%.
        guidance: the guidance scale ``synthesize`` uses when none is given (1: the conditional field alone).
    """

    mask_dropout: float = 0.1
    guidance: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.mask_dropout) and 0.0 <= self.mask_dropout < 1.0):
            raise SemflowInputError(f"model.method_args.mask_dropout={self.mask_dropout}; expected a probability in "
                                    "[0, 1) (1 would never show the network a mask)")
        check_guidance(self.guidance, "model.method_args.guidance")


def check_guidance(value: Any, what: str = "guidance") -> float:
    """``value`` as a guidance scale: a finite number ``>= 0``; else one line naming ``what``."""
    try:
        scale = float(value)
    except (TypeError, ValueError):
        raise SemflowInputError(f"{what}={value!r}; expected a finite number >= 0") from None
    if not (math.isfinite(scale) and scale >= 0):
        raise SemflowInputError(f"{what}={value}; expected a finite number >= 0 (1: the conditional field alone, "
                                "0: unconditional, above 1: stronger guidance towards the mask)")
    return scale


def mask_generators(labels: torch.Tensor, samples: int, seed: int | None,
                    generator: torch.Generator | list[torch.Generator] | None) -> list[torch.Generator]:
    """The checks every synthesizer makes of its inputs, and one CPU generator per mask (as
    :meth:`semflow.models.semflow.SemFlowPipeline.synthesize` takes them: a list gives mask ``b`` its own)."""
    if labels.dim() != 3:
        raise SemflowInputError(f"synthesize expects masks of shape (B, H, W), got {tuple(labels.shape)}")
    if samples < 1:
        raise SemflowInputError(f"samples={samples}; expected >= 1")
    if isinstance(generator, list):
        if len(generator) != labels.shape[0]:
            raise SemflowInputError(f"{len(generator)} generators for {labels.shape[0]} masks; expected one per mask")
        return generator
    if generator is None:
        generator = make_generator(torch.seed() if seed is None else seed)
    return [generator] * labels.shape[0]


class NoiseFlowSynthesizer(Segmenter, method="noise-flow"):
    """Synthesize images from masks with a mask-conditioned rectified flow from noise (``model.method=noise-flow``).

    The network is called as ``network(cat([z_t, condition]), 1000 t)`` with ``condition`` ``(B, K + 1, h, w)``:
    ``K`` class fractions and a channel of ones (zeros where training dropped the mask).
    """

    SOLVERS: ClassVar[tuple[str, ...]] = tuple(STEPPERS)
    DEFAULT_SOLVER: ClassVar[str | None] = "euler"
    can_segment: ClassVar[bool] = False
    can_synthesize: ClassVar[bool] = True
    #: ``synthesize`` takes a ``guidance`` scale (``semflow synthesize --guidance``).
    guided: ClassVar[bool] = True

    def __init__(self, codec: Codec, network: nn.Module, config: ModelConfig, dataset: DatasetInfo) -> None:
        self.options = from_dict(NoiseFlowOptions, config.method_args, "model.method_args")
        super().__init__(codec, network, config, dataset)
        self.velocity = VelocityModel(network, time_scale=config.time_scale)

    @classmethod
    def network_channels(cls, codec: Codec, dataset: DatasetInfo, config: ModelConfig) -> tuple[int, int]:
        """``[z_t, K class fractions, mask given]`` in (``C + K + 1``), the velocity out (``C``)."""
        return codec.latent_channels + dataset.num_classes + 1, codec.latent_channels

    @property
    def trainable(self) -> nn.Module:
        """``v``: the network behind the time conversion."""
        return self.velocity

    def condition(self, labels: torch.Tensor) -> torch.Tensor:
        """The network's extra input for class maps ``(B, h, w)`` at the model size: ``(B, K + 1, h/f, w/f)``,
        class fractions per latent cell and a channel of ones (the mask is given)."""
        fractions = one_hot_mask(labels, self.dataset.num_classes, self.dataset.ignore_index, self.codec.downsample)
        return torch.cat([fractions, torch.ones_like(fractions[:, :1])], dim=1)

    def posterior_training_loss(
        self,
        posterior: Posterior,
        labels: torch.Tensor,
        trainable: nn.Module | None = None,
        generator: torch.Generator | None = None,
        at: TrainingTime | None = None,
    ) -> torch.Tensor:
        """The velocity MSE on one batch: ``||v(z_t, t | mask) - (eps - z0)||^2`` at ``t ~ U(0, 1)``.

        Draws ``z0`` from the posterior, then ``eps``, the dropped masks and ``t`` from ``generator`` in that order.

        Args:
            posterior: ``codec.image_posterior(images)``: ``mean`` and ``std`` ``(B, C, h/f, w/f)``.
            labels: ``(B, h, w)`` class maps at the model size.
            trainable: the velocity module to train (a distributed wrapper of :attr:`velocity`); default ours.
            generator: random source of every draw.
            at: where training stands (the rival's loss is the same throughout).
        """
        velocity = self.velocity if trainable is None else trainable
        with torch.no_grad():
            z0 = posterior.sample(generator)
            eps = torch.randn(z0.shape, generator=generator, device=z0.device, dtype=z0.dtype)
            keep = torch.rand(z0.shape[0], generator=generator, device=z0.device) >= self.options.mask_dropout
            condition = self.condition(labels.to(z0.device)) * keep.view(-1, 1, 1, 1).to(z0.dtype)
        t = sample_time(z0.shape[0], z0.device, generator=generator)
        path = sample_path(z0, eps, t)
        dtype = next(velocity.parameters()).dtype
        return flow_matching_loss(velocity(path.z_t.to(dtype), t, condition=condition.to(dtype)), path)

    def guided_field(self, condition: torch.Tensor, guidance: float) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """``v(z, t)`` for the solver: the conditional field, or at ``guidance != 1`` the guided one,
        ``v_uncond + guidance (v_cond - v_uncond)`` (one batched call of both)."""
        if guidance == 1.0:
            return lambda z, t: self.velocity(z, t, condition=condition)
        if guidance == 0.0:
            empty = torch.zeros_like(condition)
            return lambda z, t: self.velocity(z, t, condition=empty)
        both = torch.cat([condition, torch.zeros_like(condition)])

        def field(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            v_cond, v_uncond = self.velocity(torch.cat([z, z]), torch.cat([t, t]), condition=both).chunk(2)
            return v_uncond + guidance * (v_cond - v_uncond)

        return field

    def check_guidance(self, guidance: float | None) -> float:
        """``guidance`` (default the model's ``method_args.guidance``) if this model can be guided with it."""
        scale = self.options.guidance if guidance is None else check_guidance(guidance)
        if scale != 1.0 and self.options.mask_dropout == 0:
            raise SemflowInputError(f"guidance={scale}: this model was trained with mask_dropout=0, so it has no "
                                    "unconditional field to guide with; use guidance 1")
        return scale

    @torch.no_grad()
    def synthesize(
        self,
        labels: torch.Tensor,
        steps: int = 25,
        samples: int = 1,
        seed: int | None = None,
        solver: str | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        guidance: float | None = None,
    ) -> SynthesisOutput:
        """Synthesize ``samples`` images per mask, each from fresh Gaussian noise.

        Args:
            labels: ``(B, H, W)`` class maps, any size (resized to the model size by nearest neighbour).
            steps: solver steps from ``t = 1`` (noise) to ``t = 0`` (image).
            samples: images per mask, ``K >= 1``.
            seed: makes the noise reproducible (drawn on the CPU, so alike on any device).
            solver: ``euler`` (default), ``heun`` or ``midpoint``.
            generator: a CPU generator, or a list of ``B`` of them, one per mask (mask ``b``'s images then depend
                on its generator alone).
            guidance: classifier-free guidance scale ``>= 0`` (default: the model's ``method_args.guidance``).

        Returns:
            ``images`` ``(B, K, 3, h, w)`` in ``[0, 1]`` at the model size.
        """
        solver = self.check_solver(solver)
        scale = self.check_guidance(guidance)
        generators = mask_generators(labels, samples, seed, generator)
        p = self._param()
        repeated = resize_label(labels.long().cpu(), self.size).repeat_interleave(samples, dim=0)
        condition = self.condition(repeated).to(device=p.device, dtype=p.dtype)
        shape = (samples, *self.latent_shape)
        noise = torch.cat([torch.randn(shape, generator=g) for g in generators]).to(device=p.device, dtype=p.dtype)
        out = ODESolver(self.guided_field(condition, scale)).sample(
            noise, time_grid(steps, reverse=True, device=noise.device), method=solver)
        images = self.codec.decode(out.z).float().clamp(0, 1)
        return SynthesisOutput(images=images.reshape(labels.shape[0], samples, *images.shape[1:]))

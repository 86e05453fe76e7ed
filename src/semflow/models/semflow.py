"""SemFlow: one rectified flow between images and masks, run in both directions.

* Segmentation: ``z0 = E(image)``, solve ``dz/dt = v(z, t)`` from ``t = 0`` to ``1``, ``D(z1)`` is a
  pseudo-mask, decoded to classes by the nearest palette colour.
* Synthesis: ``z1 = E(palette(mask) + U(-beta, beta))`` with a fresh perturbation per sample, solve from
  ``t = 1`` to ``0``, ``D(z0)`` is the image.

The path and loss are :mod:`semflow.flow.path`, the solver :mod:`semflow.flow.solver`, and the network sees
time through :class:`semflow.flow.velocity.VelocityModel` (the one place ``t`` becomes ``1000 t``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ClassVar, Iterable

import torch
from torch import nn

from semflow.codecs import Codec, Posterior
from semflow.config import ModelConfig
from semflow.data.base import DatasetInfo
from semflow.data.transforms import resize_label
from semflow.errors import SemflowInputError
from semflow.flow.class_head import HeadMean
from semflow.flow.class_means import SceneBank, class_means, paint
from semflow.flow.path import sample_path, sample_time
from semflow.flow.self_alignment import self_aligned_sample
from semflow.flow.solver import SOLVERS, ODESolver, RenoisedSource, time_grid
from semflow.flow import texture
from semflow.flow.state import StateLayout
from semflow.flow.velocity import VelocityModel
from semflow.images import as_images
from semflow.losses import cross_entropy_loss
from semflow.models.base import SegmentationOutput, Segmenter, TrainingTime
from semflow.pseudomask.perturbation import perturb
from semflow.seeding import make_generator


@dataclass
class SynthesisOutput:
    """``images``: float ``(B, K, 3, h, w)`` in ``[0, 1]`` at the model size, ``K`` samples per mask."""

    images: torch.Tensor


class SemFlowPipeline(Segmenter, method="semflow"):
    """Segment images and synthesize images from masks with one rectified flow (``model.method=semflow``).

    Args:
        codec: the E/D pair.
        network: backbone called as ``network(z, timestep)``; wrapped as the velocity ``v(z, t)``.
        config: the model configuration.
        dataset: class names, ignore index and colours of the training data.

    ``SemFlowPipeline.from_pretrained`` loads a folder of any method (the baselines too), as it always has.
    """

    SOLVERS: ClassVar[tuple[str, ...]] = SOLVERS
    DEFAULT_SOLVER: ClassVar[str | None] = "euler"
    can_synthesize: ClassVar[bool] = True
    LOADS_ANY_METHOD: ClassVar[bool] = True

    def __init__(self, codec: Codec, network: nn.Module, config: ModelConfig, dataset: DatasetInfo) -> None:
        super().__init__(codec, network, config, dataset)
        self.velocity = VelocityModel(network, time_scale=config.time_scale,
                                      head_channels=self.head_channels(dataset, config))
        self.layout = StateLayout(config.state, config.state_noise, config.image_fill)
        self.objective = config.objective
        # model.image_source=class-means: the training scenes' class colours synthesis paints masks with (collected
        # by prepare_training, saved with the model; semflow.flow.class_means).
        self.scenes: SceneBank | None = None

    @classmethod
    def network_channels(cls, codec: Codec, dataset: DatasetInfo, config: ModelConfig) -> tuple[int, int]:
        """States in; velocities out, and ``K`` class logits with a head; a ``stacked`` state has twice the latent
        channels."""
        channels = StateLayout(config.state).channels(codec.latent_channels)
        return channels, channels + cls.head_channels(dataset, config)

    @staticmethod
    def head_channels(dataset: DatasetInfo, config: ModelConfig) -> int:
        """The class head's logits per pixel: ``K`` under ``model.readout=head``, else 0."""
        return dataset.num_classes if config.readout == "head" else 0

    @property
    def trainable(self) -> nn.Module:
        """``v``: the network behind the time conversion."""
        return self.velocity

    def require_scenes(self) -> SceneBank:
        """The scene bank synthesis draws from (``model.image_source=class-means``); a clear error where the model
        has none (a model built from a config and never trained)."""
        if self.scenes is None:
            raise SemflowInputError("model.image_source=class-means synthesizes from the training scenes' class "
                                    "colours, and this model has none: train it (semflow train collects them)")
        return self.scenes

    def _check_colors(self, colors: torch.Tensor, batch: int) -> torch.Tensor:
        shape = (self.palette.num_classes + 1, self.codec.latent_channels)
        if colors.dim() != 3 or tuple(colors.shape[1:]) != shape or colors.shape[0] not in (1, batch):
            raise SemflowInputError(f"colors of shape {tuple(colors.shape)}; expected (B or 1, {shape[0]}, {shape[1]})"
                                    f" for {batch} mask(s)")
        return colors.expand(batch, -1, -1)

    @torch.no_grad()
    def scene_colors(self, images: torch.Tensor, labels: torch.Tensor | None = None, steps: int = 1) -> torch.Tensor:
        """The class colours of reference images, what :meth:`synthesize` paints masks with (``colors``): their
        latents averaged over each class, ``(B, K + 1, C)``.

        Args:
            images: ``(B, 3, H, W)`` in ``[0, 1]``, any size (resized to the model size).
            labels: their class maps ``(B, H, W)``; default: this model's own segmentation in ``steps`` steps.

        Classes a reference does not show take their mean over the training scenes.
        """
        bank = self.require_scenes()
        images = as_images(images)
        if labels is None:
            labels = self.segment(images, steps=steps).labels
        return bank.complete(*class_means(self.encode_input(images), labels, self.palette.num_classes))

    EXTRA_FILES: ClassVar[tuple[str, ...]] = (SceneBank.FILE,)

    def save_extras(self, directory: Path) -> tuple[str, ...]:
        """Write the scene bank, where there is one, beside the network (:meth:`Segmenter.save_pretrained`)."""
        if self.scenes is None:
            return ()
        self.scenes.save(directory)
        return (SceneBank.FILE,)

    def load_extras(self, directory: Path) -> None:
        """Read the scene bank of a ``model.image_source=class-means`` folder (:meth:`Segmenter.from_pretrained`)."""
        if self.config.image_source == "class-means":
            self.scenes = SceneBank.load(directory, self.palette.num_classes, self.codec.latent_channels)

    # ------------------------------------------------------------------ training objective
    def prepare_training(self, scenes: Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]]) -> str | None:
        """Collect the scene bank synthesis draws from (``model.image_source=class-means``): the class means of the
        training scenes ``scenes()`` yields (:meth:`Segmenter.prepare_training`)."""
        if self.config.image_source != "class-means":
            return None
        means, present = [], []
        for latents, labels in scenes():
            m, p = class_means(latents.float(), labels, self.palette.num_classes)
            means.append(m.cpu())
            present.append(p.cpu())
        self.scenes = SceneBank(torch.cat(means), torch.cat(present))
        return f"collected the class colours of {self.scenes.means.shape[0]} training scene(s) for synthesis"

    def finish_training(self, scenes: Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]]) -> str | None:
        """With ``model.match_texture``: set ``model.synthesis_eta`` to the candidate whose samples of the training
        masks ``scenes()`` yields carry their images' high-frequency energy best (:mod:`semflow.flow.texture`)."""
        if not self.config.match_texture:
            return None
        images, labels = (torch.cat(parts)[:texture.MASKS] for parts in zip(*scenes()))

        def samples(eta: float) -> torch.Tensor:
            # Fresh generators of the same seeds: the same perturbations, colours and first noise at every eta.
            generators = [make_generator(0, i) for i in range(len(labels))]
            out = self.synthesize(labels, steps=texture.STEPS, samples=texture.SAMPLES, generator=generators, eta=eta)
            return out.images.flatten(0, 1)

        try:
            found = texture.match_texture(samples, images)
        except SemflowInputError as err:  # flat training images: the trained model is kept, with the eta given
            return f"{err}; synthesis eta stays {self.config.synthesis_eta:g}"
        self.config.synthesis_eta = found.eta
        return found.line()

    @torch.no_grad()
    def training_ends(self, posterior: Posterior, labels: torch.Tensor,
                      generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Each pair's path ends ``z0`` (the image state) and ``z1`` (the mask state), ``(B, C', h, w)``.

        Draws from ``generator``, in this order: the image latents ``mean + std * eps``, a ``stacked`` state's fill
        of the mask part, the mask's perturbation, and (``image_source=fill``) the image part's fill; with
        ``class-means`` the image part at the mask end is the mask painted with its own image's class means.
        """
        image = posterior.sample(generator)
        z0 = self.layout.image_state(image, generator)
        mask = self.encode_masks(labels, generator=generator)
        source = None
        if self.config.image_source == "class-means":
            source = paint(labels, class_means(image, labels, self.palette.num_classes)[0], image.shape[-2:])
        return z0, self.layout.mask_state(mask, generator, source=source)

    def aligned_count(self, batch: int, at: TrainingTime | None) -> int:
        """How many samples of a batch come from the model's own solves: ``self_align_share`` of it in the last
        ``self_align_fraction`` of the training steps, else none."""
        fraction = self.objective.self_align_fraction
        if at is None or not fraction or at.step < at.steps * (1 - fraction):
            return 0
        return round(self.objective.self_align_share * batch)

    def posterior_training_loss(
        self,
        posterior: Posterior,
        labels: torch.Tensor,
        trainable: nn.Module | None = None,
        generator: torch.Generator | None = None,
        at: TrainingTime | None = None,
    ) -> torch.Tensor:
        """The SemFlow loss (:attr:`objective`); with the default objective, the paper's: MSE between ``v(z_t, t)``
        and ``z1 - z0`` at ``t ~ U(0, 1)``.

        Args:
            posterior: ``codec.image_posterior(images)``: ``mean`` and ``std`` of shape ``(B, C, h/f, w/f)``.
            labels: ``(B, h, w)`` class maps at the model size.
            trainable: the velocity module to train (a distributed wrapper of :attr:`velocity`); default ours.
            generator: random source: the ends (:meth:`training_ends`), then ``t``, then the self-aligned solves.
            at: where training stands: the self-aligned phase is the last ``self_align_fraction`` of the steps.
        """
        o, velocity = self.objective, self.velocity if trainable is None else trainable
        z0, z1 = self.training_ends(posterior, labels, generator)
        aligned = self.aligned_count(z0.shape[0], at)
        t = sample_time(z0.shape[0] - aligned, z0.device, generator, o.t0_mass, o.t1_mass)
        z_t = sample_path(z0[aligned:], z1[aligned:], t).z_t
        if aligned:  # the first samples at states of the model's own solves (semflow.flow.self_alignment)
            own = self_aligned_sample(velocity, z0[:aligned], z1[:aligned], o.self_align_steps, generator)
            t, z_t = torch.cat([own.t, t]), torch.cat([own.z_t, z_t])
            z0, z1 = torch.cat([own.z0, z0[aligned:]]), torch.cat([own.z1, z1[aligned:]])
        # One call through the module's forward (what a distributed wrapper intercepts), in the network's dtype.
        v, _, _, logits = velocity(z_t.to(next(velocity.parameters()).dtype), t, full=True)
        loss = self.layout.mean((v.float() - (z1 - z0).float()) ** 2)
        if logits is not None:  # the class head: the mask end's classes from every training state
            loss = loss + cross_entropy_loss(logits, labels, self.palette.ignore_index)
        return loss

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def snap_to_palette(self, state: torch.Tensor) -> torch.Tensor:
        """The state whose mask part is the nearest mask of palette colours: ``D`` of the mask part, each pixel
        replaced by its nearest palette colour, encoded again; an image part is kept. ``(B, C, h, w)`` in and out
        (the ``snap`` solver's projection of a predicted mask end)."""
        labels = self.palette.decode(self.decode_pseudo_masks(self.layout.mask_part(state)).float())
        return self._with_mask_of(state, labels)

    def _with_mask_of(self, state: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``state`` ``(B, C, h, w)`` with its mask part replaced by the encoded pseudo-mask of ``labels``
        ``(B, H, W)`` at the model size (an image part is kept)."""
        mask = self.codec.encode_mask((self.palette.encode(labels) / 255.0).to(device=state.device, dtype=state.dtype))
        return torch.cat([self.layout.image_part(state), mask], dim=1) if self.layout.stacked else mask

    @torch.no_grad()
    def segment(
        self, images: torch.Tensor, steps: int = 25, solver: str | None = None, return_trajectory: bool = False,
        latents: torch.Tensor | None = None,
    ) -> SegmentationOutput:
        """Segment a batch of images.

        Args:
            images: ``(B, 3, H, W)`` float in ``[0, 1]``, any size (resized to the model size and back).
            steps: number of solver steps ``N >= 1`` from ``t = 0`` to ``t = 1``.
            solver: ``euler`` (the paper; the default), ``heun``, ``midpoint`` or ``snap`` (Euler steps towards
                the predicted mask end projected onto palette colours: :mod:`semflow.flow.solver`).
            return_trajectory: also return the decoded pseudo-mask at the start and after every step.
            latents: :meth:`encode_input` of ``images``, when already computed (scoring several step counts).

        With ``model.readout=head`` the labels are the argmax of the head's class probabilities averaged over the
        solve's network calls (:class:`~semflow.flow.class_head.HeadMean`), and ``snap`` projects onto the palette
        colours of the classes read at each call; without a head, onto each pixel's nearest palette colour.
        ``pseudo_mask`` is the decoded final state either way.
        """
        solver = self.check_solver(solver)
        images = as_images(images)
        image = self.encode_input(images) if latents is None else latents
        # A stacked state's fill is one draw of a fixed seed, the same for every image: segmentation is
        # deterministic and an image's labels do not depend on its batch.
        z0 = self.layout.image_state(image, make_generator(0) if self.layout.noise else None, per_sample=False)
        in_size = (int(images.shape[-2]), int(images.shape[-1]))
        head = HeadMean() if self.velocity.head_channels else None

        def predict(z: torch.Tensor, t: torch.Tensor):
            prediction = self.velocity.predict(z, t)
            if head is not None:
                head.add(prediction.logits)
            return prediction

        def far_end(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            end = predict(z, t).z1  # the mask end this call implies, projected onto the classes read
            return self.snap_to_palette(end) if head is None else self._with_mask_of(end, head.labels(self.size))

        out = ODESolver(lambda z, t: predict(z, t).velocity).sample(
            z0, time_grid(steps, device=z0.device), method=solver, return_trajectory=return_trajectory,
            far_end=far_end)
        trajectory = None
        if out.trajectory is not None:
            trajectory = torch.stack([self.decode_pseudo_masks(self.layout.mask_part(z)).float()
                                      for z in out.trajectory])
        if head is None:
            return self._labels_from_mask_latent(self.layout.mask_part(out.z), in_size, trajectory)
        return SegmentationOutput(labels=resize_label(head.labels(self.size), in_size),
                                  pseudo_mask=self.decode_pseudo_masks(self.layout.mask_part(out.z)).float(),
                                  trajectory=trajectory)

    def check_eta(self, eta: float, solver: str | None = None) -> float:
        """``eta`` (the share of the image part's noise redrawn at every synthesis step) if this model and ``solver``
        can take it; otherwise one clear :class:`SemflowInputError`."""
        if not (math.isfinite(eta) and 0 <= eta <= 1):
            raise SemflowInputError(f"eta={eta}; expected a share from 0 (the ODE) to 1 (all the noise redrawn)")
        if eta and not (self.layout.stacked and self.layout.image_noise > 0):
            raise SemflowInputError(f"eta={eta}: stochastic synthesis redraws the image part's noise at the mask "
                                    "end, and this model has none (model.state_image_noise = 0)")
        if eta and solver not in (None, "euler", "snap"):  # snap has no projection at the image end: Euler itself
            raise SemflowInputError(f"synthesis with eta={eta} (model.synthesis_eta) takes stochastic Euler steps; "
                                    f"solver {solver!r} has none: use euler, or eta=0 for the ODE")
        return float(eta)

    @torch.no_grad()
    def synthesize(
        self,
        labels: torch.Tensor,
        steps: int = 25,
        samples: int = 1,
        seed: int | None = None,
        solver: str | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        colors: torch.Tensor | None = None,
        eta: float | None = None,
    ) -> SynthesisOutput:
        """Synthesize ``samples`` images per mask, each from a fresh perturbation of the pseudo-mask.

        Args:
            labels: ``(B, H, W)`` class maps, any size (resized to the model size by nearest neighbour).
            steps: solver steps from ``t = 1`` to ``t = 0``.
            samples: images per mask, ``K >= 1``.
            seed: makes the perturbations reproducible (:func:`semflow.seeding.make_generator`; drawn on the
                CPU, so on any device alike).
            solver: ``euler`` (the default), ``heun``, ``midpoint`` or ``snap`` (the image end has no projection:
                Euler itself).
            generator: alternatively, a CPU generator to draw the perturbations from, or a list of ``B``
                of them, one per mask: then mask ``b``'s images depend on its generator alone, not on the
                other masks of the batch (as diffusers pipelines treat a list of generators).
            colors: ``model.image_source=class-means`` only: the class colours to paint the masks with, ``(B or 1,
                K + 1, C)`` as :meth:`scene_colors` returns them, instead of a training scene drawn per sample (the
                samples of a mask then differ by the perturbation and the noise alone).
            eta: the share of the image part's noise at the mask end redrawn at every step (stochastic Euler steps,
                :class:`~semflow.flow.solver.RenoisedSource`); default ``model.synthesis_eta``; ``0``: the ODE.
        """
        solver = self.check_solver(solver)
        if labels.dim() != 3:
            raise SemflowInputError(f"synthesize expects masks of shape (B, H, W), got {tuple(labels.shape)}")
        if samples < 1:
            raise SemflowInputError(f"samples={samples}; expected >= 1")
        if isinstance(generator, list) and len(generator) != labels.shape[0]:
            raise SemflowInputError(f"{len(generator)} generators for {labels.shape[0]} masks; expected one per mask")
        eta = self.check_eta(self.config.synthesis_eta if eta is None else eta, solver)
        if generator is None:
            generator = make_generator(torch.seed() if seed is None else seed)
        p = self._param()
        small = resize_label(labels.long().cpu(), self.size)
        repeated = small.repeat_interleave(samples, dim=0)  # (B*K, h, w), mask b's samples adjacent
        pseudo = self.palette.encode(repeated)
        # On the CPU: device-independent seeds. Mask b's perturbations (and fills) come from its own generator.
        generators = generator if isinstance(generator, list) else [generator] * labels.shape[0]
        noisy = torch.cat([perturb(p_b, self.beta, generator=g)
                           for p_b, g in zip(pseudo.split(samples), generators)])
        mask = self.codec.encode_mask((noisy / 255.0).to(device=p.device, dtype=p.dtype))
        z1 = mask
        if self.layout.stacked:
            source: list[torch.Tensor | None] = [None] * len(generators)
            if self.config.image_source == "class-means":
                # Each sample paints its mask with the class colours of a training scene drawn at random from its
                # mask's generator, or with the colours given for its mask.
                if colors is None:
                    bank = self.require_scenes()
                    scene = torch.cat([bank.draw(samples, g) for g in generators])
                else:
                    scene = self._check_colors(colors, labels.shape[0]).repeat_interleave(samples, dim=0)
                painted = paint(repeated, scene.to(device=p.device, dtype=p.dtype), tuple(mask.shape[-2:]))
                source = list(painted.split(samples))
            elif colors is not None:
                raise SemflowInputError("colors apply to a model trained with model.image_source=class-means; this "
                                        f"one starts synthesis from model.image_source={self.config.image_source}")
            z1 = torch.cat([self.layout.mask_state(z_b, g, source=s_b)
                            for z_b, g, s_b in zip(mask.split(samples), generators, source)])
        renoise = None
        if eta:  # the noise around the painted source (or zeros) is redrawn; the mask part follows Euler
            image_mean = torch.zeros_like(mask) if source[0] is None else torch.cat(source)  # type: ignore[arg-type]
            scale = torch.cat([torch.full_like(mask[:1], self.layout.image_noise), torch.zeros_like(mask[:1])], dim=1)
            renoise = RenoisedSource(torch.cat([image_mean, mask], dim=1), scale, eta, generators)
            solver = "euler"
        out = ODESolver(self.velocity).sample(z1, time_grid(steps, reverse=True, device=z1.device), method=solver,
                                              renoise=renoise)
        images = self.codec.decode(self.layout.image_part(out.z)).float().clamp(0, 1)
        return SynthesisOutput(images=images.reshape(labels.shape[0], samples, *images.shape[1:]))


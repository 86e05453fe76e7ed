"""The SemFlow pipeline: codec + velocity network + palette, run in both directions.

* Segmentation: ``z0 = E(image)``, solve ``dz/dt = v(z, t)`` from ``t = 0`` to ``1``, ``D(z1)`` is a
  pseudo-mask, decoded to classes by the nearest palette colour.
* Synthesis: ``z1 = E(palette(mask) + U(-beta, beta))`` with a fresh perturbation per sample, solve from
  ``t = 1`` to ``0``, ``D(z0)`` is the image.

A trained model is a folder (see :meth:`SemFlowPipeline.save_pretrained`) that alone is enough to run it.
The pipeline follows the device and dtype of its network; it never chooses a device.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from semflow._version import __version__
from semflow.codecs import Codec, Posterior, codec_class, load_codec
from semflow.config import ModelConfig, from_dict, to_dict
from semflow.data.base import DatasetInfo
from semflow.data.transforms import resize_image, resize_label
from semflow.errors import SemflowInputError
from semflow.networks import build_network, load_network
from semflow.palette import Palette
from semflow.perturbation import check_beta, perturb
from semflow.rectified_flow import flow_matching_loss, sample_path, sample_time
from semflow.solver import ODESolver, time_grid
from semflow.velocity import VelocityModel

CONFIG_NAME = "semflow_config.json"
NETWORK_DIR = "network"
CODEC_DIR = "codec"
FORMAT_VERSION = 1
# The authors' release adds 0.1 * U(-0.5, 0.5) in [-1, 1] units to the pseudo-mask: beta = 0.05 * 127.5
# = 6.375 pixel levels, whatever the palette. Small is also what segmentation wants: the perturbation is
# part of z_t in training but absent from the states an ODE solve visits, so a large beta shifts them.
AUTHORS_BETA = 6.375


@dataclass
class SegmentationOutput:
    """``labels``: int64 ``(B, H, W)`` at the input size; ``pseudo_mask``: float ``(B, 3, h, w)`` pixel
    levels at the model size (``D(z1)``, unclamped); ``trajectory``: ``(N+1, B, 3, h, w)`` decoded
    pseudo-mask levels along the path, or ``None``."""

    labels: torch.Tensor
    pseudo_mask: torch.Tensor
    trajectory: torch.Tensor | None = None


@dataclass
class SynthesisOutput:
    """``images``: float ``(B, K, 3, h, w)`` in ``[0, 1]`` at the model size, ``K`` samples per mask."""

    images: torch.Tensor


def make_palette(config: ModelConfig, info: DatasetInfo) -> Palette:
    """The palette a model config asks for, for the data set's classes."""
    if config.palette.kind == "spread":
        return Palette.spread(info.num_classes, ignore_index=info.ignore_index)
    return Palette(info.num_classes, k=config.palette.k, s=config.palette.s, ignore_index=info.ignore_index)


def resolve_beta(config: ModelConfig, palette: Palette) -> float:
    """``config.beta`` checked against ``0 < beta < s/2``; ``None`` gives :data:`AUTHORS_BETA` (or ``s/4`` for
    palettes too fine for it)."""
    beta = min(AUTHORS_BETA, palette.s / 4) if config.beta is None else float(config.beta)
    check_beta(beta, palette.s)
    return beta


class SemFlowPipeline(nn.Module):
    """Segment images and synthesize images from masks with one rectified flow.

    Args:
        codec: the E/D pair.
        network: backbone called as ``network(z, timestep)``.
        config: the model configuration.
        dataset: class names, ignore index and colours of the training data.

    The baselines (:mod:`semflow.methods`) subclass this class: they share the codec, palette, files and
    evaluation, and replace the network's role, the training loss and the segmentation sampler.
    """

    method = "semflow"
    #: The ``solver`` names :meth:`segment` accepts, and the one it uses by default.
    SOLVERS: tuple[str, ...] = ("euler", "heun", "midpoint")
    DEFAULT_SOLVER = "euler"
    #: Whether ``steps`` changes :meth:`segment`'s result (False for one-pass segmenters).
    STEPPED = True

    def __init__(self, codec: Codec, network: nn.Module, config: ModelConfig, dataset: DatasetInfo) -> None:
        super().__init__()
        self.codec = codec
        self.velocity = VelocityModel(network, time_scale=config.time_scale)
        self.config = config
        self.dataset = dataset
        self.palette = make_palette(config, dataset)
        self.beta = resolve_beta(config, self.palette)
        self.size = (int(config.size[0]), int(config.size[1]))
        self.latent_shape = codec.latent_shape(*self.size)

    # ------------------------------------------------------------------ construction and files
    @classmethod
    def network_channels(cls, codec: Codec, dataset: DatasetInfo) -> tuple[int, int]:
        """Channels into and out of the network: latents to velocities of the same shape."""
        return codec.latent_channels, codec.latent_channels

    @classmethod
    def _class_for(cls, config: ModelConfig) -> type[SemFlowPipeline]:
        from semflow.methods import model_class

        target = model_class(config.method)
        if not issubclass(target, cls):
            raise SemflowInputError(f"a model.method={config.method!r} model is a {target.__name__}, not a {cls.__name__}")
        return target

    @classmethod
    def from_config(cls, config: ModelConfig, dataset: DatasetInfo) -> SemFlowPipeline:
        """A new, untrained model (random network, codec as configured) of the class ``config.method`` names."""
        cls = cls._class_for(config)
        codec = codec_class(config.codec)(**config.codec_args)
        network = build_network(config.network, config.network_args, *cls.network_channels(codec, dataset))
        return cls(codec, network, config, dataset)

    @property
    def network(self) -> nn.Module:
        return self.velocity.network

    @property
    def trainable(self) -> nn.Module:
        """The module whose parameters are trained (and averaged by EMA): here ``v``; the network itself in
        the baselines. Its forward is what :meth:`training_loss` calls."""
        return self.velocity

    def check_solver(self, solver: str | None) -> str:
        """``solver`` (default :attr:`DEFAULT_SOLVER`) if this model's :meth:`segment` runs it; else a clear error."""
        solver = self.DEFAULT_SOLVER if solver is None else solver
        if solver not in self.SOLVERS:
            raise SemflowInputError(f"solver {solver!r} does not apply to a {self.method} model; "
                                    f"expected one of {', '.join(self.SOLVERS)}")
        return solver

    def save_pretrained(self, directory: str | Path) -> None:
        """Write the model folder: ``semflow_config.json``, ``network/`` (diffusers config.json +
        safetensors) and ``codec/``. Written beside the target and renamed into place, so an existing
        model is replaced only by a complete one."""
        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
        try:
            self.network.save_pretrained(str(tmp / NETWORK_DIR), safe_serialization=True)
            (tmp / CODEC_DIR).mkdir()
            self.codec.save_weights(tmp / CODEC_DIR)
            meta = {
                "format": FORMAT_VERSION,
                "semflow_version": __version__,
                "model": to_dict(self.config),
                "codec_config": self.codec.get_config(),
                "dataset": self.dataset.to_dict(),
                "palette": {"num_classes": self.palette.num_classes, "k": self.palette.k, "s": self.palette.s,
                            "ignore_index": self.palette.ignore_index},
                "beta": self.beta,
            }
            (tmp / CONFIG_NAME).write_text(json.dumps(meta, indent=2) + "\n")
            if directory.exists():
                # Keep whatever else lives in the folder (loss history, checkpoints): replace only our parts.
                for name in (NETWORK_DIR, CODEC_DIR, CONFIG_NAME):
                    old = directory / name
                    if old.is_dir():
                        shutil.rmtree(old)
                    elif old.exists():
                        old.unlink()
                # The config goes last: its presence marks a complete model.
                for name in (NETWORK_DIR, CODEC_DIR, CONFIG_NAME):
                    (tmp / name).rename(directory / name)
                tmp.rmdir()
            else:
                tmp.rename(directory)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> SemFlowPipeline:
        """Load a model folder written by :meth:`save_pretrained` (local files only), as the class its
        ``model.method`` names (``SemFlowPipeline.from_pretrained`` loads the baselines too)."""
        directory = Path(directory)
        config_path = directory / CONFIG_NAME
        if not directory.is_dir():
            raise SemflowInputError(f"{directory}: no such model folder")
        if not config_path.is_file():
            raise SemflowInputError(f"{directory}: not a semflow model folder (missing {CONFIG_NAME})")
        try:
            meta: dict[str, Any] = json.loads(config_path.read_text())
        except json.JSONDecodeError as err:
            raise SemflowInputError(f"{config_path}: corrupt JSON ({err.msg} at line {err.lineno})") from None
        if meta.get("format") != FORMAT_VERSION:
            raise SemflowInputError(
                f"{config_path}: model format {meta.get('format')!r} (semflow {meta.get('semflow_version')}); "
                f"this semflow {__version__} reads format {FORMAT_VERSION}"
            )
        config = from_dict(ModelConfig, meta["model"])
        if not (directory / NETWORK_DIR).is_dir():
            raise SemflowInputError(f"{directory}: model folder is missing {NETWORK_DIR}/")
        # Each backbone's loader checks its own files and names the one that is missing or corrupt.
        try:
            network = load_network(config.network, directory / NETWORK_DIR)
        except (OSError, ValueError, RuntimeError) as err:
            if isinstance(err, SemflowInputError):
                raise
            raise SemflowInputError(f"{directory / NETWORK_DIR}: cannot load the network: {str(err).splitlines()[0]}") from None
        target = cls._class_for(config)
        codec = load_codec(config.codec, meta.get("codec_config", {}), directory / CODEC_DIR)
        pipe = target(codec, network, config, DatasetInfo.from_dict(meta["dataset"]))
        return pipe.eval()

    # ------------------------------------------------------------------ the two ends of the flow
    def _param(self) -> torch.Tensor:
        return next(self.velocity.parameters())

    def encode_images(self, images: torch.Tensor, sample: bool = False,
                      generator: torch.Generator | None = None) -> torch.Tensor:
        """``z0``: images ``(B, 3, h, w)`` in ``[0, 1]`` at the model size to latents ``(B, C, h/f, w/f)``."""
        return self.codec.encode_image(images, sample=sample, generator=generator)

    def encode_masks(self, labels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """``z1``: class maps ``(B, h, w)`` at the model size, perturbed by ``U(-beta, beta)``, to latents."""
        pseudo = self.palette.encode(labels)
        noisy = perturb(pseudo, self.beta, generator=generator)
        return self.codec.encode_mask(noisy / 255.0)

    def decode_pseudo_masks(self, z1: torch.Tensor) -> torch.Tensor:
        """``D(z1)`` in pixel levels, ``(B, 3, h, w)``, unclamped."""
        return self.codec.decode(z1) * 255.0

    # ------------------------------------------------------------------ training objective
    def training_loss(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        velocity: nn.Module | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """The SemFlow loss on one batch: MSE between ``v(z_t, t)`` and ``z1 - z0`` at ``t ~ U(0, 1)``.

        Args:
            images: ``(B, 3, h, w)`` in ``[0, 1]`` at the model size.
            labels: ``(B, h, w)`` class maps (ignore pixels are drawn white, as the authors do).
            velocity: the module to train (a distributed wrapper of ``self.velocity``); default ours.
            generator: random source for the posterior sample, the perturbation and ``t``.
        """
        with torch.no_grad():
            posterior = self.codec.image_posterior(images)
        return self.posterior_training_loss(posterior, labels, velocity=velocity, generator=generator)

    def posterior_training_loss(
        self,
        posterior: Posterior,
        labels: torch.Tensor,
        velocity: nn.Module | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """:meth:`training_loss` from the image posterior instead of the images (for cached latents).

        Draws ``z0 = mean + std * eps`` and then the perturbation and ``t`` from ``generator`` in the same
        order as :meth:`training_loss`, so a posterior cached from the same images gives the same loss.

        Args:
            posterior: ``codec.image_posterior(images)``: ``mean`` and ``std`` of shape ``(B, C, h/f, w/f)``.
            labels: ``(B, h, w)`` class maps at the model size.
            velocity: the module to train (a distributed wrapper of ``self.velocity``); default ours.
            generator: random source for the posterior sample, the perturbation and ``t``.
        """
        velocity = self.velocity if velocity is None else velocity
        with torch.no_grad():
            z0 = posterior.sample(generator)
            z1 = self.encode_masks(labels, generator=generator)
        t = sample_time(z0.shape[0], z0.device, generator=generator)
        path = sample_path(z0, z1, t)
        # The network's own dtype: a no-op under autocast, a cast where a wrapper keeps bf16 weights (DeepSpeed).
        z_t = path.z_t.to(next(velocity.parameters()).dtype)
        return flow_matching_loss(velocity(z_t, path.t), path)

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def segment(
        self, images: torch.Tensor, steps: int = 25, solver: str | None = None, return_trajectory: bool = False,
        latents: torch.Tensor | None = None,
    ) -> SegmentationOutput:
        """Segment a batch of images.

        Args:
            images: ``(B, 3, H, W)`` float in ``[0, 1]``, any size (resized to the model size and back).
            steps: number of solver steps ``N >= 1`` from ``t = 0`` to ``t = 1``.
            solver: ``euler`` (the paper; the default), ``heun`` or ``midpoint``.
            return_trajectory: also return the decoded pseudo-mask at every step.
            latents: :meth:`encode_input` of ``images``, when already computed (scoring several step counts).
        """
        solver = self.check_solver(solver)
        z0 = self.encode_input(images) if latents is None else latents
        in_size = (int(images.shape[-2]), int(images.shape[-1]))
        out = ODESolver(self.velocity).sample(
            z0, time_grid(steps, device=z0.device), method=solver, return_trajectory=return_trajectory
        )
        trajectory = None
        if out.trajectory is not None:
            trajectory = torch.stack([self.decode_pseudo_masks(z).float() for z in out.trajectory])
        return self._labels_from_mask_latent(out.z, in_size, trajectory)

    @torch.no_grad()
    def encode_input(self, images: torch.Tensor) -> torch.Tensor:
        """What :meth:`segment` starts from: images ``(B, 3, H, W)`` in ``[0, 1]``, any size, resized to the model
        size on the network's device and dtype and encoded to ``z0`` ``(B, C, h/f, w/f)`` (the posterior mode)."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise SemflowInputError(f"segment expects images of shape (B, 3, H, W), got {tuple(images.shape)}")
        p = self._param()
        return self.encode_images(resize_image(images.to(device=p.device, dtype=torch.float32), self.size).to(p.dtype))

    def _labels_from_mask_latent(self, z1: torch.Tensor, in_size: tuple[int, int],
                                 trajectory: torch.Tensor | None = None) -> SegmentationOutput:
        pseudo = self.decode_pseudo_masks(z1).float()
        labels = resize_label(self.palette.decode(pseudo), in_size)  # type: ignore[arg-type]
        return SegmentationOutput(labels=labels, pseudo_mask=pseudo, trajectory=trajectory)

    @torch.no_grad()
    def synthesize(
        self,
        labels: torch.Tensor,
        steps: int = 25,
        samples: int = 1,
        seed: int | None = None,
        solver: str | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
    ) -> SynthesisOutput:
        """Synthesize ``samples`` images per mask, each from a fresh perturbation of the pseudo-mask.

        Args:
            labels: ``(B, H, W)`` class maps, any size (resized to the model size by nearest neighbour).
            steps: solver steps from ``t = 1`` to ``t = 0``.
            samples: images per mask, ``K >= 1``.
            seed: makes the perturbations reproducible (drawn on the CPU, so on any device alike).
            solver: ``euler`` (the default), ``heun`` or ``midpoint``.
            generator: alternatively, a CPU generator to draw the perturbations from, or a list of ``B``
                of them, one per mask: then mask ``b``'s images depend on its generator alone, not on the
                other masks of the batch (as diffusers pipelines treat a list of generators).
        """
        solver = self.check_solver(solver)
        if labels.dim() != 3:
            raise SemflowInputError(f"synthesize expects masks of shape (B, H, W), got {tuple(labels.shape)}")
        if samples < 1:
            raise SemflowInputError(f"samples={samples}; expected >= 1")
        if isinstance(generator, list) and len(generator) != labels.shape[0]:
            raise SemflowInputError(f"{len(generator)} generators for {labels.shape[0]} masks; expected one per mask")
        if generator is None:
            generator = torch.Generator()
            generator.manual_seed(torch.seed() if seed is None else seed)
        p = self._param()
        small = resize_label(labels.long().cpu(), self.size)
        repeated = small.repeat_interleave(samples, dim=0)  # (B*K, h, w), mask b's samples adjacent
        pseudo = self.palette.encode(repeated)
        # On the CPU: device-independent seeds.
        if isinstance(generator, list):
            noisy = torch.cat([perturb(p_b, self.beta, generator=g) for p_b, g in zip(pseudo.split(samples), generator)])
        else:
            noisy = perturb(pseudo, self.beta, generator=generator)
        z1 = self.codec.encode_mask((noisy / 255.0).to(device=p.device, dtype=p.dtype))
        out = ODESolver(self.velocity).sample(z1, time_grid(steps, reverse=True, device=z1.device), method=solver)
        images = self.codec.decode(out.z).float().clamp(0, 1)
        return SynthesisOutput(images=images.reshape(labels.shape[0], samples, *images.shape[1:]))

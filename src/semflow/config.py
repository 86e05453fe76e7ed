"""Typed configurations. YAML files and ``--set key=value`` overrides only fill these dataclasses.

Unknown keys are errors; values are checked against the field types. The resolved configuration is
saved beside every trained model (``train_config.json``), so a model folder alone can be reproduced.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import reprlib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from semflow.errors import SemflowInputError

T = TypeVar("T")

# Sanity bounds checked before anything is allocated: a model side in pixels (16k: beyond any data set here) and
# the optimiser steps of one run.
MAX_SIZE = 16384
MAX_TRAIN_STEPS = 10**9


# Palette kinds (semflow.pseudomask.palette): the one list.
PALETTES = ("authors", "spread")


@dataclass
class PaletteConfig:
    """Pseudo-mask palette. ``kind``: ``authors`` (use ``k``, ``s``; paper: 6, 50) or ``spread``
    (``k = ceil(C^(1/3))``, ``s = floor(255/(k-1))`` for the data set's ``C`` classes)."""

    kind: str = "authors"
    k: int = 6
    s: int = 50

    def __post_init__(self) -> None:
        _check_choice("palette.kind", self.kind, PALETTES)
        if self.kind != "authors" and (self.k, self.s) != (6, 50):
            raise SemflowInputError(f"palette.k={self.k}, palette.s={self.s} apply to kind 'authors'; the "
                                    f"{self.kind} palette chooses its own (leave them at 6 and 50)")


# State layouts (semflow.flow.state), image sources and readouts (semflow.models.semflow): the one list of each.
STATES = ("shared", "stacked")
IMAGE_SOURCES = ("fill", "class-means")
READOUTS = ("palette", "head")


# What a model folder can hold: the one list of method names. Class ``semflow.models.<method>`` (a hyphen read
# as an underscore) registers itself for each (see semflow.models.base.model_class).
METHODS = ("semflow", "dsm", "discriminative", "noise-flow", "spade")
# The backbone kind of each method when ``model.network`` is not given (every other method: ``unet2d``).
METHOD_NETWORKS = {"spade": "spade"}


@dataclass
class ObjectiveConfig:
    """SemFlow's training objective beyond the paper's velocity MSE at ``t ~ U(0, 1)`` (the defaults are the paper's).

    ``t0_mass``, ``t1_mass``: the probability of drawing ``t = 0`` (where segmentation starts) and ``t = 1`` (where
    synthesis starts); the rest ``U(0, 1)``. ``self_align_fraction``:
    the last fraction of the training steps draws ``self_align_share`` of each batch from the model's own Euler
    solves of ``self_align_steps`` steps, half from each end, with targets that point from the state reached to the
    true other end (DDP's self-aligned phase); the rest of the batch stays on the straight path.
    """

    t0_mass: float = 0.0
    t1_mass: float = 0.0
    self_align_fraction: float = 0.0
    self_align_steps: int = 5
    self_align_share: float = 1.0

    def __post_init__(self) -> None:
        _check_probability("model.objective.t0_mass", self.t0_mass)
        _check_probability("model.objective.t1_mass", self.t1_mass)
        if self.t0_mass + self.t1_mass > 1:
            raise SemflowInputError(f"model.objective: t0_mass + t1_mass = {self.t0_mass + self.t1_mass}; "
                                    "expected at most 1")
        _check_probability("model.objective.self_align_fraction", self.self_align_fraction)
        _check_probability("model.objective.self_align_share", self.self_align_share)
        if self.self_align_steps < 2:
            raise SemflowInputError(f"model.objective.self_align_steps={self.self_align_steps}; expected >= 2")


@dataclass
class ModelConfig:
    """What a SemFlow model is made of; saved in the model folder's ``semflow_config.json``.

    Args:
        size: ``[H, W]`` the model runs at, pixels (multiples of the codec's factor and the UNet's 2^levels).
        codec: codec kind (``pixel``, ...); ``codec_args``: its constructor arguments.
        network: backbone kind (``unet2d``, ``spade``, ...; default: the method's own, :data:`METHOD_NETWORKS`,
            else ``unet2d``); ``network_args``: overrides of its default config.
        palette: pseudo-mask palette.
        beta: perturbation amplitude in pixel levels (0..255 scale), ``0 < beta < s/2``;
            ``None`` takes the authors' 6.375 levels (``s/4`` for palettes with ``s < 25.5``).
        time_scale: the network sees ``time_scale * t``.
        method: what is trained: ``semflow`` (the rectified flow, segments and synthesizes), ``dsm`` (a
            conditional diffusion segmenter, the paper's baseline), ``discriminative`` (per-pixel
            cross-entropy, one forward pass), or a synthesis rival: ``noise-flow`` (a mask-conditioned rectified
            flow from Gaussian noise to the image) or ``spade`` (a SPADE GAN); see :mod:`semflow.models`.
        method_args: options of the method's own (``noise-flow``, ``spade``), checked by its class against its
            typed options (:class:`semflow.models.noise_flow.NoiseFlowOptions`,
            :class:`semflow.models.spade.SpadeOptions`); unknown keys are errors.
        scheduler_args: ``dsm`` only: overrides of its diffusers noise-scheduler config (``beta_schedule``,
            ``num_train_timesteps``, ``timestep_spacing``, ...).
        state: ``shared`` (paper: image and mask latents are points of one latent space) or ``stacked`` (the
            state has both latents in separate channels, ``[image part, mask part]``).
        state_noise: ``stacked`` only: standard deviation of the Gaussian fill of the mask part at the image end
            (and, with ``image_source=fill``, of the image part at the mask end), in latent units (``0``: zeros).
        image_source: ``stacked`` only: what the image part holds at the mask end, where synthesis starts:
            ``fill`` (the fill of ``state_noise``) or ``class-means``: the mask painted with a scene's class-mean
            latents. Training paints each mask with its own image's means; synthesis with those of a training scene
            drawn at random (saved with the model as ``scenes.safetensors``), so a mask's samples differ by the
            colours of real scenes (:mod:`semflow.flow.class_means`).
        state_image_noise: ``class-means`` only: standard deviation of Gaussian noise added to that painting, in
            latent units (``recommended``: 0.1, which the flow turns into texture; ``0``: the flat painting).
        solver: the ODE solver ``segment`` and ``synthesize`` use when none is given (``None``: the method's
            own, Euler for SemFlow); one of SemFlow's solvers (``euler``, ``heun``, ``midpoint``, ``snap``;
            checked by the model, which owns the list).
        readout: how a segmentation's classes are read: ``palette`` (paper: each pixel's nearest palette colour
            in the final mask) or ``head``: the network also outputs ``K`` class logits of the mask end at every
            call (``K`` more output channels, trained by cross-entropy at every training state), the classes are
            the argmax of the class probabilities averaged over a solve's calls, and ``snap`` projects onto those
            classes' palette colours (:mod:`semflow.flow.class_head`).
        synthesis_eta: with noise in the image part at the mask end (:attr:`image_fill` > 0) only: synthesis takes
            stochastic Euler steps that redraw this share (``[0, 1]``) of that noise at every step
            (:class:`semflow.flow.solver.RenoisedSource`); ``0``: the ODE. Segmentation is unchanged.
        match_texture: with noise in the image part at the mask end only: after training, :attr:`synthesis_eta`
            becomes the share (0, 0.25, 0.5, 0.75 or 1) whose samples of 16 training masks carry their images'
            high-frequency energy best (:mod:`semflow.flow.texture`); the model is saved with it. ``False``: keep
            :attr:`synthesis_eta` as given.
        objective: ``semflow`` only: the training objective (:class:`ObjectiveConfig`), the model's own.
    """

    size: list[int] = field(default_factory=lambda: [32, 32])
    codec: str = "pixel"
    codec_args: dict[str, Any] = field(default_factory=dict)
    network: str | None = None
    network_args: dict[str, Any] = field(default_factory=dict)
    palette: PaletteConfig = field(default_factory=PaletteConfig)
    beta: float | None = None
    time_scale: float = 1000.0
    method: str = "semflow"
    scheduler_args: dict[str, Any] = field(default_factory=dict)
    method_args: dict[str, Any] = field(default_factory=dict)
    state: str = "shared"
    state_noise: float = 0.0
    image_source: str = "fill"
    state_image_noise: float = 0.0
    solver: str | None = None
    readout: str = "palette"
    synthesis_eta: float = 0.0
    match_texture: bool = False
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)

    @property
    def image_fill(self) -> float:
        """Standard deviation of the Gaussian noise in the image part at the mask end, where synthesis starts: the
        fill (``state_noise``) for ``image_source=fill``, ``state_image_noise`` on the class-means painting."""
        return self.state_noise if self.image_source == "fill" else self.state_image_noise

    def __post_init__(self) -> None:
        if len(self.size) != 2 or min(self.size) < 1 or max(self.size) > MAX_SIZE:
            raise SemflowInputError(f"model.size={self.size}; expected [H, W] with sides 1..{MAX_SIZE}")
        if self.beta is not None and not math.isfinite(self.beta):
            raise SemflowInputError(f"model.beta={self.beta}; expected a finite number of pixel levels")
        _check_at_least("model.time_scale", self.time_scale, strict=True)
        if self.method not in METHODS:
            raise SemflowInputError(f"model.method={self.method!r}; expected one of {', '.join(METHODS)}")
        if self.network is None:
            self.network = METHOD_NETWORKS.get(self.method, "unet2d")
        if (self.network == "spade") != (self.method == "spade"):
            raise SemflowInputError(f"model.network={self.network!r} with model.method={self.method!r}: the spade "
                                    "network (a SPADE generator and its discriminator) is the spade method's, and only "
                                    "its (leave model.network unset for each method's own)")
        if self.method_args and self.method not in ("noise-flow", "spade"):
            raise SemflowInputError(f"model.method_args applies to model.method=noise-flow or spade, not {self.method!r}")
        if self.scheduler_args and self.method != "dsm":
            raise SemflowInputError(f"model.scheduler_args applies only to model.method=dsm, not {self.method!r}")
        _check_choice("model.state", self.state, STATES)
        _check_at_least("model.state_noise", self.state_noise)
        if self.state_noise and self.state != "stacked":
            raise SemflowInputError("model.state_noise applies only to model.state=stacked")
        _check_choice("model.image_source", self.image_source, IMAGE_SOURCES)
        if self.image_source != "fill" and self.state != "stacked":
            raise SemflowInputError(f"model.image_source={self.image_source} applies only to model.state=stacked")
        if self.solver is not None and self.method != "semflow":
            raise SemflowInputError(f"model.solver applies to model.method=semflow, not {self.method!r} (its "
                                    "sampler is chosen with --solver)")
        _check_choice("model.readout", self.readout, READOUTS)
        _check_at_least("model.state_image_noise", self.state_image_noise)
        if self.state_image_noise and self.image_source != "class-means":
            raise SemflowInputError("model.state_image_noise is noise on the class-means painting: it applies only "
                                    "to model.image_source=class-means (the fill's own is model.state_noise)")
        _check_probability("model.synthesis_eta", self.synthesis_eta)
        if self.synthesis_eta and not (self.state == "stacked" and self.image_fill > 0):
            raise SemflowInputError("model.synthesis_eta redraws the noise of the image part at the mask end: it needs "
                                    "model.state=stacked with model.state_image_noise (class-means) or state_noise "
                                    "(fill) > 0")
        if self.match_texture and not (self.state == "stacked" and self.image_fill > 0):
            raise SemflowInputError("model.match_texture chooses how much of the image part's noise synthesis redraws: "
                                    "it needs model.state=stacked with model.state_image_noise (class-means) or "
                                    "state_noise (fill) > 0")
        if self.method != "semflow" and (self.state, self.readout) != ("shared", "palette"):
            raise SemflowInputError(f"model.state and model.readout apply to model.method=semflow, not "
                                    f"{self.method!r}")
        if self.method != "semflow" and self.objective != ObjectiveConfig():
            raise SemflowInputError(f"model.objective applies to model.method=semflow; a {self.method} model "
                                    "trains with its paper's fixed loss (use --preset paper, or drop the objective)")


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise SemflowInputError(f"{name}={_short(value)}; expected one of {', '.join(choices)}")


def _check_at_least(name: str, value: float, minimum: float = 0.0, strict: bool = False) -> None:
    """``value`` finite and ``>= minimum`` (``> minimum`` when ``strict``), or one line naming ``name``."""
    if not (math.isfinite(value) and (value > minimum if strict else value >= minimum)):
        raise SemflowInputError(f"{name}={value}; expected a finite number {'>' if strict else '>='} {minimum:g}")


def _check_probability(name: str, value: float) -> None:
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise SemflowInputError(f"{name}={value}; expected a probability in [0, 1]")


# Training augmentations, from the most to the least random (see :class:`TrainConfig`).
AUGMENTATIONS = ("scale-crop-flip", "flip", "none")


@dataclass
class TrainConfig:
    """How to train.

    ``steps``: optimiser steps; ``lr``: peak AdamW learning rate after ``warmup_steps`` of linear warm-up,
    then cosine decay to 0; ``grad_clip``: max global gradient norm (0: off); ``ema_decay``: keep an
    exponential moving average of the weights with this decay and export it (``None``: off);
    ``checkpoint_every``: steps between resumable checkpoints (0: only when stopped early), of which the
    last ``checkpoints_total_limit`` are kept; ``max_minutes``: stop, checkpoint and save after this long;
    ``skip_bad``: leave out bad pairs (listed in ``bad_files.tsv``) instead of stopping; ``cache``: decode
    and shrink on-disk images once (:class:`semflow.data.cache.DecodedCache`) so loading keeps up.
    ``batch_size`` is per process; the effective batch is ``batch_size * processes * gradient_accumulation_steps``;
    ``scale_lr`` multiplies ``lr`` by ``processes * gradient_accumulation_steps`` (linear scaling; logged).
    ``augment``: ``scale-crop-flip`` (the whole image at the model's aspect ratio, as evaluation sees it,
    zoomed by a random factor in [1, 1.5], random crop, random left-right flip),
    ``flip`` (resized to the model size, random flip) or ``none`` (resized to the model size).
    ``cache_latents``: encode every training image once and keep its posterior ``(mean, std)``, drawing
    ``z0 = mean + std * eps`` each step: the same loss as without the cache, for frozen codecs. It needs
    inputs that do not change between epochs, so ``augment`` must be ``flip`` (both orientations are
    cached: a latent codec's encoder does not commute with flipping) or ``none``; left unset (``None``), the
    augmentation is ``scale-crop-flip``, or ``flip`` with the cache.
    """

    data: str = "shapes"
    steps: int = 2000
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 100
    grad_clip: float = 1.0
    seed: int = 0
    num_workers: int = 0
    log_every: int = 10
    checkpoint_every: int = 500
    checkpoints_total_limit: int = 2
    gradient_accumulation_steps: int = 1
    ema_decay: float | None = None
    mixed_precision: str = "no"
    max_minutes: float | None = None
    skip_bad: bool = False
    cache: bool = True
    scale_lr: bool = False
    augment: str | None = None
    cache_latents: bool = False

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "gradient_accumulation_steps", "log_every"):
            if getattr(self, name) < 1:
                raise SemflowInputError(f"train.{name}={getattr(self, name)}; expected >= 1")
        if self.steps > MAX_TRAIN_STEPS:
            raise SemflowInputError(f"train.steps={self.steps}; expected at most {MAX_TRAIN_STEPS:.0e}")
        for name in ("num_workers", "warmup_steps", "checkpoint_every", "checkpoints_total_limit"):
            if getattr(self, name) < 0:
                raise SemflowInputError(f"train.{name}={getattr(self, name)}; expected >= 0")
        from semflow.seeding import check_seed  # here: semflow.seeding imports torch

        check_seed(self.seed, "train.seed")
        _check_at_least("train.lr", self.lr, strict=True)
        for name in ("weight_decay", "grad_clip"):
            _check_at_least(f"train.{name}", getattr(self, name))
        if self.max_minutes is not None and not (math.isfinite(self.max_minutes) and self.max_minutes > 0):
            raise SemflowInputError(f"train.max_minutes={self.max_minutes}; expected a positive number of minutes or null")
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            raise SemflowInputError(f"train.ema_decay={self.ema_decay}; expected a number in (0, 1) or null")
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            raise SemflowInputError(f"train.mixed_precision={self.mixed_precision!r}; expected no, bf16 or fp16")
        if self.augment is None:  # the default: the most random augmentation the run's inputs allow
            self.augment = "flip" if self.cache_latents else "scale-crop-flip"
        if self.augment not in AUGMENTATIONS:
            raise SemflowInputError(f"train.augment={self.augment!r}; expected one of {', '.join(AUGMENTATIONS)}")
        if self.cache_latents and self.augment == "scale-crop-flip":
            raise SemflowInputError(
                "train.cache_latents=true needs inputs that are the same every epoch, but train.augment="
                "'scale-crop-flip' draws a new crop each time; set train.augment=flip or none (or turn the cache off)")


@dataclass
class RunConfig:
    """Everything ``semflow train`` needs: the model and how to train it."""

    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# Named recipes: overrides of the dataclass defaults (which are the paper's, so that model folders written
# before these options existed load as what they are). ``semflow train`` starts from ``recommended``.
# Each value was chosen by measurement: docs/quality.md has the ablation, with the command of every row.
PRESETS: dict[str, dict[str, Any]] = {
    # The authors' recipe exactly: one shared latent, v-prediction, t ~ U(0, 1), U(-beta, beta) with beta = 6.375
    # levels, their palette k = 6, s = 50.
    "paper": {},
    "recommended": {
        "model": {
            # Image and mask in separate channels: paths stop crossing, so more steps stop hurting; a small
            # Gaussian fill in the mask part where segmentation starts.
            "state": "stacked", "state_noise": 0.1,
            # Synthesis starts from the mask painted with a training scene's class colours (real scenes' variety),
            # plus Gaussian noise that the flow turns into texture (a flat source gives flat samples).
            "image_source": "class-means", "state_image_noise": 0.1,
            # Stochastic synthesis: a share of that noise is redrawn at every step, chosen after training so that
            # the samples of training masks carry their images' texture (docs/synthesis.md).
            "synthesis_eta": 1.0, "match_texture": True,
            # Class colours spread over the whole colour cube.
            "palette": {"kind": "spread"},
            # Segment with Euler steps towards the predicted mask end projected onto the palette colours of the
            # classes read: each state mixes the image with a valid mask, as training states do.
            "solver": "snap",
            # Read the classes from K logits beside the velocity, not from the nearest palette colour.
            "readout": "head",
            "objective": {
                # Mass where each direction starts: t = 0 (segmentation) and t = 1 (synthesis).
                "t0_mass": 0.5, "t1_mass": 0.1,
                # The last 30% of training: half of each batch at states of the model's own 5-step solves, so that
                # later steps correct the earlier ones instead of drifting.
                "self_align_fraction": 0.3, "self_align_share": 0.5,
            },
        },
    },
}
DEFAULT_PRESET = "recommended"
# What a preset changes in a latent codec's space (any codec but ``pixel``), on top of its values above.
LATENT_PRESETS: dict[str, dict[str, Any]] = {
    "recommended": {
        # More noise on the class-means painting: in TAEF2's latents it bought variety and a lower FD, in pixels
        # grain (docs/synthesis.md, the latent noise sweep).
        "model": {"state_image_noise": 0.7},
    },
}


# What only a SemFlow model has: a preset's values for these do not apply to the baselines.
_FLOW_ONLY = {"model": ("state", "state_noise", "state_image_noise", "image_source", "solver", "readout",
                        "synthesis_eta", "match_texture", "objective")}


def _for_method(data: dict[str, Any], method: str) -> dict[str, Any]:
    """Preset overrides ``data`` without the keys only a SemFlow model has, for a ``method`` baseline."""
    if method != "semflow":
        for section, keys in _FLOW_ONLY.items():
            for key in keys:
                data.get(section, {}).pop(key, None)
    return data


def latent_part(name: str, method: str = "semflow") -> dict[str, Any]:
    """What preset ``name`` changes for a ``method`` model in a latent codec's space (:data:`LATENT_PRESETS`, a
    deep copy; empty where nothing applies)."""
    return _for_method(copy.deepcopy(LATENT_PRESETS.get(name, {})), method)


def preset(name: str, method: str = "semflow", codec: str = "pixel") -> dict[str, Any]:
    """The overrides of preset ``name`` (a deep copy) for a ``method`` model in ``codec``'s space (with its
    :func:`latent_part` for a latent codec); a clear error for unknown names."""
    if name not in PRESETS:
        raise SemflowInputError(f"preset {name!r}; expected one of {', '.join(PRESETS)}")
    data = _for_method(copy.deepcopy(PRESETS[name]), method)
    return _merge(data, latent_part(name, method)) if codec != "pixel" else data


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def demo_config(size: int, seed: int, preset_name: str = DEFAULT_PRESET, method: str = "semflow") -> RunConfig:
    """``semflow demo``'s model and training configuration (pixel space, small UNet) on top of preset
    ``preset_name`` (the part of it that applies to ``method``); also the benchmarks'."""
    data = {
        "model": {
            "size": [size, size],
            # 5 classes: the spread palette puts them on cube corners, 255 levels apart; the authors' k=6, s=50
            # would give five shades of blue 50 levels apart (see README: "Which palette"). Kept for every
            # preset, so that the demo's ablation compares flow recipes, not palettes.
            "palette": {"kind": "spread"},
            # Measured on 2 CPU cores: ~0.2 s a step at batch 16, enough steps in 4 minutes to learn the shapes.
            "network_args": {"block_out_channels": [16, 32, 64]},
        },
        "train": {"data": f"shapes:size={size}", "batch_size": 16, "lr": 2e-3, "warmup_steps": 50, "seed": seed,
                  "log_every": 10, "checkpoint_every": 0},
    }
    if method != "semflow":
        data["model"]["method"] = method
    return from_dict(RunConfig, _merge(preset(preset_name, method), data))


def _short(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters: an error line stays one line, whatever a file holds."""
    short = reprlib.Repr()
    short.maxlevel, short.maxlist, short.maxdict, short.maxstring, short.maxother = 3, 6, 6, limit, limit
    text = short.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _coerce(value: Any, hint: Any, where: str, complete: bool = False) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise SemflowInputError(f"config {where}: expected a mapping, got {_short(value)}")
        return from_dict(hint, value, where, complete)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where, complete)
            except SemflowInputError as err:
                errors.append(str(err))
        raise SemflowInputError(errors[0] if errors else f"config {where}: bad value {_short(value)}")
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise SemflowInputError(f"config {where}: expected a list, got {_short(value)}")
        (item,) = typing.get_args(hint) or (Any,)
        return [_coerce(v, item, f"{where}[{i}]", complete) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise SemflowInputError(f"config {where}: expected a mapping, got {_short(value)}")
        return dict(value)
    if hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):
        try:  # YAML 1.1 reads "3e-4" (no dot) as a string
            return float(value)
        except ValueError:
            pass
    if hint in (int, float, str, bool) and not (isinstance(value, hint) and not (hint is int and isinstance(value, bool))):
        raise SemflowInputError(f"config {where}: expected {hint.__name__}, got {_short(value)}")
    return value


def from_dict(cls: type[T], data: dict[str, Any], where: str = "", complete: bool = False) -> T:
    """Build dataclass ``cls`` from a (nested) mapping; unknown keys and wrong types are errors.

    ``complete``: every field of ``cls`` (and of the dataclasses inside it) must be given, as in a saved model
    folder, which states every setting: a missing key is an error, never a default.
    """
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    if complete:
        absent = [name for name in (f.name for f in dataclasses.fields(cls)) if name not in data]  # type: ignore[arg-type]
        if absent:
            prefix = f"{where}." if where else ""
            raise SemflowInputError(f"config key(s) {[prefix + k for k in absent]} missing; a saved configuration "
                                    "states every setting (no defaults)")
    unknown = sorted(set(data) - names)
    if unknown:
        prefix = f"{where}." if where else ""
        named = [(prefix + str(k))[:60] for k in unknown[:5]] + (["..."] if len(unknown) > 5 else [])
        raise SemflowInputError(f"unknown config key(s) {named}; expected {sorted(names)}")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}" if where else k, complete) for k, v in data.items()}
    return cls(**kwargs)


# Keys of the options in docs/quality.md's "Tried and removed", each at the value that means what semflow does now;
# files that hold another value used a removed option.
_REMOVED_MODEL_KEYS = {"perturbation": "uniform", "parameterization": "velocity", "condition": "none"}
_REMOVED_OBJECTIVE_KEYS = {"image_weight": 0.5, "self_align_solver": "euler", "class_weight": 0.0, "class_tau": None}


def upgrade(data: dict[str, Any], where: str = "config", training: bool = True) -> dict[str, Any]:
    """A model (``{"model": ...}``) or run configuration as semflow reads it now (a copy): ``train.objective`` moved to
    ``model.objective``, its ``time`` became ``t0_mass`` / ``t1_mass``, and removed keys at today's behaviour are
    dropped. A file that used a removed option is refused naming it (``where``: the file, for the message), except
    objective options when not ``training`` (a trained model runs the same whatever objective trained it)."""
    data = copy.deepcopy(data)
    train = data.get("train")
    if isinstance(train, dict) and "objective" in train and not isinstance(data.get("model"), dict):
        data["model"] = {}
    model = data.get("model")
    if not isinstance(model, dict):
        return data

    def refuse(key: str, value: Any) -> None:
        raise SemflowInputError(f"{where}: {key}={_short(value)} is an option semflow no longer has (docs/quality.md, "
                                "\"Tried and removed\"); drop it (a model trained with it needs retraining)")

    section = "model.objective"
    if isinstance(train, dict) and isinstance(train.get("objective"), dict):
        model.setdefault("objective", train.pop("objective"))
        section = "train.objective"
    objective = model.get("objective")
    if isinstance(objective, dict) and isinstance(objective.get("time"), dict):
        time = objective.pop("time")
        removed = time.get("kind", "uniform") not in ("uniform", "endpoints") or time.get("t0_width") or time.get("t1_width")
        if training and removed:
            refuse(f"{section}.time", time)
        objective.update({k: time[k] for k in ("t0_mass", "t1_mass") if k in time})
    for key, now in _REMOVED_OBJECTIVE_KEYS.items():
        value = objective.pop(key, now) if isinstance(objective, dict) else now
        if training and value != now and now is not None:  # None: any value means today's behaviour
            refuse(f"{section}.{key}", value)
    if not training and "objective" not in model and any(key in model for key in _REMOVED_MODEL_KEYS):
        model["objective"] = to_dict(ObjectiveConfig())  # a folder from before the objective was the model's
    for key, now in _REMOVED_MODEL_KEYS.items():
        if model.get(key, now) != now:
            refuse(f"model.{key}", model[key])
        model.pop(key, None)
    if isinstance(model.get("palette"), dict) and model["palette"].get("kind") == "separated":
        refuse("model.palette.kind", "separated")
    # An eta given (a file from before match_texture, or the user's own) is kept as given.
    if "synthesis_eta" in model and "match_texture" not in model:
        model["match_texture"] = False
    # Before it was noise on the class-means painting, it was the image part's own fill. Saved files name their
    # image source; without one (a preset's, or --set) the value is already today's meaning.
    if "state_image_noise" in model and "image_source" in model:
        image_noise, noise = model["state_image_noise"], model.get("state_noise", 0.0)
        if model["image_source"] == "fill":  # the fill is state_noise's now
            if image_noise not in (None, 0.0, noise):
                refuse("model.state_image_noise", image_noise)
            model["state_image_noise"] = 0.0
        elif image_noise is None:  # None meant state_noise's fill on the painting
            model["state_image_noise"] = noise
    return data


def to_dict(config: Any) -> dict[str, Any]:
    """A JSON-serialisable nested dict of a dataclass config."""
    return dataclasses.asdict(config)


# The most values a YAML document may expand to: aliases (``*name``) repeat a node without copying it, so a few
# hundred bytes of nested aliases can stand for billions of values (a "billion laughs" file).
MAX_YAML_VALUES = 100_000


def read_yaml(text: str, where: str) -> Any:
    """``text`` read with ``yaml.safe_load`` (no tags that build objects); refused in one line when it is not
    YAML, holds a Python tag, or expands to more than :data:`MAX_YAML_VALUES` values."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise SemflowInputError(f"{where} is not valid YAML ({_short(problem, 120)}{at}); only plain values, "
                                "lists and mappings are read (no !!python tags)") from None
    count, stack = 0, [data]
    while stack:  # shared nodes are counted each time they appear: the size the document stands for
        node = stack.pop()
        count += 1
        if count > MAX_YAML_VALUES:
            raise SemflowInputError(f"{where} expands to more than {MAX_YAML_VALUES} values (nested YAML aliases?); "
                                    "a configuration holds a few dozen")
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return data


def parse_override(item: str) -> tuple[list[str], Any]:
    """``"train.lr=3e-4"`` to ``(["train", "lr"], 0.0003)``; the value is read as YAML."""
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise SemflowInputError(f"override {_short(item)}; expected KEY=VALUE such as train.lr=3e-4")
    return key.split("."), read_yaml(value, f"--set {_short(key)}: the value")


def load_run_config(path: Path | None = None, overrides: list[str] | None = None,
                    preset_name: str | None = None) -> RunConfig:
    """Defaults (the paper's recipe), then preset ``preset_name`` (:data:`PRESETS`), then the YAML/JSON file at
    ``path``, then ``overrides`` (``section.key=value``)."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            text = Path(path).read_text()
        except OSError as err:
            raise SemflowInputError(f"cannot read config file {path}: {err.strerror}") from None
        except UnicodeDecodeError:
            raise SemflowInputError(f"config file {path} is not UTF-8 text; expected YAML or JSON") from None
        loaded = read_yaml(text, f"config file {path}")
        if loaded is not None and not isinstance(loaded, dict):
            raise SemflowInputError(f"config file {path}: expected a mapping with 'model' and 'train' sections")
        data = loaded or {}
    for item in overrides or []:
        keys, value = parse_override(item)
        node = data
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise SemflowInputError(f"override {_short(item)}: {_short(k)} is not a section")
        node[keys[-1]] = value
    data = upgrade(data, str(path) if path is not None else "config")
    _codec_from_weights(data)
    if preset_name is not None:
        model = data.get("model") if isinstance(data.get("model"), dict) else {}
        method, codec = str(model.get("method", "semflow")), str(model.get("codec") or "pixel")
        data = _merge(preset(preset_name, method, codec), data)
    return from_dict(RunConfig, data)


def _codec_from_weights(data: dict[str, Any]) -> None:
    """Where weights are given (``model.codec_args.path``) and no codec is named, the codec they hold
    (:func:`semflow.codecs.detect.codec_kind_of`): a user with codec weights gets a latent codec by default."""
    model = data.get("model")
    if not isinstance(model, dict) or model.get("codec") is not None:
        return
    args = model.get("codec_args")
    if isinstance(args, dict) and isinstance(args.get("path"), str):
        from semflow.codecs.detect import codec_kind_of

        model["codec"] = codec_kind_of(args["path"])


def save_json(obj: dict[str, Any], path: Path) -> None:
    """Write JSON atomically (temporary file in the same folder, then rename): :func:`semflow.io.write_json`."""
    from semflow.io import write_json

    write_json(obj, path)

"""What every segmenter shares: codec, palette, data-set info, the model folder, and the registry of methods.

A model is a :class:`Segmenter` subclass that registers itself under the ``model.method`` it implements
(``class DiffusionSegmenter(Segmenter, method="dsm")``). SemFlow (:mod:`semflow.models.semflow`, which adds
synthesis), DSM (:mod:`semflow.models.dsm`) and the discriminative baseline (:mod:`semflow.models.discriminative`)
are siblings behind this interface: they segment, have a training loss and live in one folder format.

A trained model is a folder (see :meth:`Segmenter.save_pretrained`) that alone is enough to run it; loading it
gives the class its ``model.method`` names. This module imports none of the models: the class of a method not
yet imported is found by the convention that ``method`` lives in ``semflow.models.<method>``.
The models follow the device and dtype of their network; they never choose a device.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable

import torch
from torch import nn

from semflow._version import __version__
from semflow.codecs import Codec, Posterior, codec_class, load_codec
from semflow.config import METHODS, ModelConfig, from_dict, to_dict, upgrade
from semflow.data.base import DatasetInfo
from semflow.data.transforms import resize_image, resize_label
from semflow.errors import SemflowInputError
from semflow.images import ImageInput, as_images
from semflow.io import files_inside, usual_permissions
from semflow.networks import build_network, load_network, network_channels, size_multiple
from semflow.pseudomask.palette import Palette
from semflow.pseudomask.perturbation import AUTHORS_BETA, check_beta, perturb
from semflow.weights import PICKLE_SUFFIXES

CONFIG_NAME = "semflow_config.json"
# The keys of semflow_config.json besides what ModelConfig and DatasetInfo hold, with their JSON types.
META_KEYS: dict[str, Any] = {"format": int, "semflow_version": str, "model": dict, "codec_config": dict,
                             "dataset": dict, "palette": dict, "beta": (int, float)}
NETWORK_DIR = "network"
CODEC_DIR = "codec"
FORMAT_VERSION = 1

#: ``model.method`` to its class, filled by :meth:`Segmenter.__init_subclass__`.
REGISTRY: dict[str, type[Segmenter]] = {}


@dataclass(frozen=True)
class TrainingTime:
    """Where training stands at a step: ``step`` optimiser steps done of ``steps``."""

    step: int = 0
    steps: int = 1


@dataclass
class SegmentationOutput:
    """``labels``: int64 ``(B, H, W)`` at the input size; ``pseudo_mask``: float ``(B, 3, h, w)`` pixel
    levels at the model size (``D(z1)``, unclamped); ``trajectory``: ``(N+1, B, 3, h, w)`` decoded
    pseudo-mask levels at the start and after each of the ``N`` steps, or ``None`` (one-pass models, or
    not asked for)."""

    labels: torch.Tensor
    pseudo_mask: torch.Tensor
    trajectory: torch.Tensor | None = None


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


def check_finite(module: nn.Module, where: Path) -> None:
    """Refuse weights holding NaN or inf (they would segment everything as class 0), naming the first tensor."""
    for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise SemflowInputError(f"{where}: weight {name} holds {bad} NaN or infinite value(s); the model is damaged")


def model_class(method: str) -> type[Segmenter]:
    """The class registered for ``method`` (importing ``semflow.models.<method>`` when needed)."""
    if method not in METHODS:
        raise SemflowInputError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    if method not in REGISTRY:
        importlib.import_module(f"semflow.models.{method.replace('-', '_')}")
    return REGISTRY[method]


def all_solvers() -> tuple[str, ...]:
    """Every solver name some method's :meth:`Segmenter.segment` accepts (for command-line choices)."""
    names: list[str] = []
    for method in METHODS:
        if model_class(method).can_segment:
            names += [s for s in model_class(method).SOLVERS if s not in names]
    return tuple(names)


class Segmenter(nn.Module):
    """A model between images and masks on a codec's latents: the part every method shares.

    Args:
        codec: the E/D pair.
        network: the backbone, called as ``network(sample, timestep)`` (its meaning is the subclass's).
        config: the model configuration.
        dataset: class names, ignore index and colours of the training data.

    The interface a method implements (a subclass gives ``method=`` in its class statement to register):

    * :meth:`posterior_training_loss`: its loss on one batch (every method), given where training stands
      (:class:`TrainingTime`); its objective is its own, set at construction from ``config``.
    * :meth:`prepare_training`: what it needs from the training data before the first step (default nothing).
    * ``segment(images, steps, solver, return_trajectory, latents) -> SegmentationOutput`` where
      :attr:`can_segment` (the default): images to class maps, see :meth:`segment`.
    * ``synthesize(labels, steps, samples, seed, solver, generator) -> SynthesisOutput`` where
      :attr:`can_synthesize`: masks to ``samples`` images each (``images`` ``(B, K, 3, h, w)`` in ``[0, 1]``),
      reproducible from ``seed`` or a CPU ``generator`` (a list of ``B`` of them: mask ``b``'s images depend on its
      generator alone), see :meth:`semflow.models.semflow.SemFlowPipeline.synthesize`.
    * optionally :meth:`network_channels`, :attr:`trainable`, :meth:`save_extras` / :meth:`load_extras`.

    A synthesis-only method sets ``can_segment = False`` and ``can_synthesize = True``; commands and evaluation
    read the two flags before calling either direction.
    """

    #: The ``model.method`` this class implements (set by ``method=`` in the class statement).
    method: ClassVar[str]
    #: The ``solver`` names :meth:`segment` accepts, and the one it uses by default.
    SOLVERS: ClassVar[tuple[str, ...]] = ()
    DEFAULT_SOLVER: ClassVar[str | None] = None
    #: Whether ``steps`` changes :meth:`segment`'s result (False for one-pass segmenters).
    STEPPED: ClassVar[bool] = True
    #: Whether the model segments images (:meth:`segment`); ``False`` for a synthesis-only method.
    can_segment: ClassVar[bool] = True
    #: Whether the model synthesizes images from masks (``synthesize``).
    can_synthesize: ClassVar[bool] = False
    #: Whether ``cls.from_pretrained`` / ``cls.from_config`` accept a folder of any method (the base, and the
    #: public entry point ``SemFlowPipeline``), rather than only this class's.
    LOADS_ANY_METHOD: ClassVar[bool] = True

    def __init_subclass__(cls, method: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.LOADS_ANY_METHOD = bool(cls.__dict__.get("LOADS_ANY_METHOD", False))
        if method is None:
            return
        if method not in METHODS:
            raise ValueError(f"{cls.__name__}: method {method!r} is not in semflow.config.METHODS {METHODS}")
        if method in REGISTRY and REGISTRY[method].__qualname__ != cls.__qualname__:
            raise ValueError(f"method {method!r} is already registered to {REGISTRY[method].__name__}")
        cls.method = method
        REGISTRY[method] = cls

    def __init__(self, codec: Codec, network: nn.Module, config: ModelConfig, dataset: DatasetInfo) -> None:
        super().__init__()
        self.codec = codec
        self.network = network
        self.config = config
        self.dataset = dataset
        self.palette = make_palette(config, dataset)
        self.beta = resolve_beta(config, self.palette)
        self.size = (int(config.size[0]), int(config.size[1]))
        if config.solver is not None and config.solver not in self.SOLVERS:
            raise SemflowInputError(f"model.solver={config.solver!r}; expected one of {', '.join(self.SOLVERS)}")
        self.latent_shape = codec.latent_shape(*self.size)
        multiple = size_multiple(network)
        if self.latent_shape[1] % multiple or self.latent_shape[2] % multiple:
            side = multiple * codec.downsample
            raise SemflowInputError(
                f"model.size {self.size[0]}x{self.size[1]}: the {config.network} network halves its input "
                f"{multiple.bit_length() - 1} times, so both sides must be multiples of {side} "
                f"(e.g. {-(-self.size[0] // side) * side}x{-(-self.size[1] // side) * side})"
            )
        have, need = network_channels(network), type(self).network_channels(codec, dataset, config)
        if have is not None and have != need:
            raise SemflowInputError(
                f"a {self.method} model with the {config.codec} codec and {dataset.num_classes} classes needs a network "
                f"of {need[0]} channels in and {need[1]} out, but this one has {have[0]} and {have[1]} "
                "(model.method, codec or classes do not match the weights)"
            )

    # ------------------------------------------------------------------ construction and files
    @classmethod
    def network_channels(cls, codec: Codec, dataset: DatasetInfo, config: ModelConfig) -> tuple[int, int]:
        """Channels into and out of the network (default: latents to tensors of the same shape)."""
        return codec.latent_channels, codec.latent_channels

    @classmethod
    def _class_for(cls, config: ModelConfig) -> type[Segmenter]:
        target = model_class(config.method)
        if not (cls.LOADS_ANY_METHOD or issubclass(target, cls)):
            raise SemflowInputError(f"a model.method={config.method!r} model is a {target.__name__}, not a {cls.__name__}")
        return target

    @classmethod
    def from_config(cls, config: ModelConfig, dataset: DatasetInfo) -> Segmenter:
        """A new, untrained model (random network, codec as configured) of the class ``config.method`` names."""
        target = cls._class_for(config)
        cls_codec = codec_class(config.codec)
        try:
            codec = cls_codec(**config.codec_args)
        except TypeError:
            accepted = [n for n in inspect.signature(cls_codec.__init__).parameters if n != "self"]
            given = ", ".join(f"{k}" for k in config.codec_args)
            raise SemflowInputError(
                f"model.codec_args ({given}) do not apply to the {config.codec} codec, which takes "
                + (f"{', '.join(accepted)}" if accepted else "no arguments (no --codec-path: it has no weights)")
            ) from None
        network = build_network(config.network, config.network_args, *target.network_channels(codec, dataset, config))
        return target(codec, network, config, dataset)

    @property
    def trainable(self) -> nn.Module:
        """The module whose parameters are trained (and averaged by EMA); its forward is what the training
        loss calls. The network itself unless a subclass wraps it."""
        return self.network

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """The optimiser's parameter groups at the training learning rate ``lr`` (torch's ``param_groups``: a
        ``params`` list, and any per-group ``lr`` or ``betas``). Default: all of :attr:`trainable`, at ``lr``.
        A method that trains parts at different rates (a GAN's generator and discriminator) returns one group each,
        so the training loop stays one optimiser, one schedule, one EMA and one checkpoint for every method."""
        return [{"params": list(self.trainable.parameters())}]

    def parameter_counts(self) -> dict[str, int]:
        """Trained parameters by part, for the training log (default: the one network)."""
        return {"network": sum(p.numel() for p in self.trainable.parameters())}

    @property
    def default_solver(self) -> str | None:
        """The solver used when none is given: the configuration's ``model.solver``, else :attr:`DEFAULT_SOLVER`."""
        return self.config.solver or self.DEFAULT_SOLVER

    def check_solver(self, solver: str | None) -> str:
        """``solver`` (default :attr:`default_solver`) if this model's :meth:`segment` runs it; else a clear error."""
        solver = self.default_solver if solver is None else solver
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
            extras = self.save_extras(tmp)
            (tmp / CONFIG_NAME).write_text(json.dumps(meta, indent=2) + "\n")
            usual_permissions(tmp)
            if directory.exists():
                # Keep whatever else lives in the folder (loss history, checkpoints): replace only our parts.
                for name in (NETWORK_DIR, CODEC_DIR, *self.EXTRA_FILES, CONFIG_NAME):
                    old = directory / name
                    if old.is_dir():
                        shutil.rmtree(old)
                    elif old.exists():
                        old.unlink()
                # The config goes last: its presence marks a complete model.
                for name in (NETWORK_DIR, CODEC_DIR, *extras, CONFIG_NAME):
                    (tmp / name).rename(directory / name)
                tmp.rmdir()
            else:
                tmp.rename(directory)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    #: Files a method may keep beside its network (:meth:`save_extras`); saving over a folder removes old ones.
    EXTRA_FILES: ClassVar[tuple[str, ...]] = ()

    def save_extras(self, directory: Path) -> tuple[str, ...]:
        """Write what a method keeps beside its network into ``directory`` and name the files (none here)."""
        return ()

    def load_extras(self, directory: Path) -> None:
        """Read what :meth:`save_extras` wrote (nothing here)."""

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> Segmenter:
        """Load a model folder written by :meth:`save_pretrained` (local safetensors files only), as the class
        its ``model.method`` names (``SemFlowPipeline.from_pretrained`` loads the baselines too).

        Raises:
            SemflowInputError: one line naming the file and what is wrong: a missing or mistyped key, an unknown
                config key, a pickle weight file, weights that do not fit the config or the method, weights that
                are not finite.
        """
        directory = Path(directory)
        config_path = directory / CONFIG_NAME
        if not directory.is_dir():
            raise SemflowInputError(f"{directory}: no such model folder")
        if not os.path.lexists(config_path):
            raise SemflowInputError(f"{directory}: not a semflow model folder (missing {CONFIG_NAME})")
        # Before anything is read: no link leads out of the folder, no file is a FIFO or a device.
        files = files_inside(directory, (CONFIG_NAME, NETWORK_DIR, CODEC_DIR))
        if config_path not in files:
            raise SemflowInputError(f"{config_path} is a folder; expected the model's JSON configuration")
        try:
            meta: Any = json.loads(config_path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            where = f" at line {err.lineno}" if isinstance(err, json.JSONDecodeError) else ""
            raise SemflowInputError(f"{config_path}: corrupt JSON ({getattr(err, 'msg', err)}{where})") from None
        if not isinstance(meta, dict):
            raise SemflowInputError(f"{config_path}: expected a JSON object, got {type(meta).__name__}")
        if meta.get("format") != FORMAT_VERSION:
            raise SemflowInputError(
                f"{config_path}: model format {meta.get('format')!r} (semflow {meta.get('semflow_version')}); "
                f"this semflow {__version__} reads format {FORMAT_VERSION}"
            )
        # Every key present and typed: a folder states every setting, nothing is filled with a default.
        for key, kind in META_KEYS.items():
            if not isinstance(meta.get(key), kind) or isinstance(meta.get(key), bool):
                what = "missing" if key not in meta else f"a {type(meta[key]).__name__}"
                expected = " or ".join({dict: "a JSON object", str: "a string", int: "a number", float: "a number",
                                        type(None): "null"}[k] for k in (kind if isinstance(kind, tuple) else (kind,)))
                raise SemflowInputError(f"{config_path}: key {key!r} is {what}; expected {expected}")
        codec_config = meta["codec_config"]
        pickles = [p for p in files if p.suffix in PICKLE_SUFFIXES]
        if pickles:
            raise SemflowInputError(f"{pickles[0]}: model folders load safetensors only; a pickle weight file "
                                    "could run code (convert it to .safetensors)")
        try:
            model_data = upgrade({"model": meta["model"]}, str(config_path), training=False)["model"]
            config = from_dict(ModelConfig, model_data, "model", complete=True)
        except SemflowInputError as err:
            raise SemflowInputError(f"{config_path}: {err}") from None
        absent = [f.name for f in dataclasses.fields(DatasetInfo) if f.name not in meta["dataset"]]
        if absent:
            raise SemflowInputError(f"{config_path}: dataset lacks {absent}; a model folder states every setting")
        try:
            dataset = DatasetInfo.from_dict(meta["dataset"])
        except SemflowInputError as err:
            raise SemflowInputError(f"{config_path}: {err}") from None
        except (KeyError, TypeError, ValueError) as err:
            raise SemflowInputError(f"{config_path}: dataset is not a data-set description ({type(err).__name__}: "
                                    f"{str(err).splitlines()[0] if str(err) else ''})") from None
        if not (directory / NETWORK_DIR).is_dir():
            raise SemflowInputError(f"{directory}: model folder is missing {NETWORK_DIR}/")
        target = cls._class_for(config)
        files_inside(directory, target.EXTRA_FILES)
        # Each backbone's loader checks its own files and names the one that is missing or corrupt.
        try:
            network = load_network(config.network, directory / NETWORK_DIR)
        except (OSError, ValueError, RuntimeError) as err:
            if isinstance(err, SemflowInputError):
                raise
            raise SemflowInputError(f"{directory / NETWORK_DIR}: cannot load the network: {str(err).splitlines()[0]}") from None
        try:
            codec = load_codec(config.codec, codec_config, directory / CODEC_DIR)
        except TypeError as err:
            raise SemflowInputError(f"{config_path}: codec_config {sorted(codec_config)} does not fit the "
                                    f"{config.codec} codec ({err})") from None
        check_finite(network, directory / NETWORK_DIR)
        model = target(codec, network, config, dataset)
        model.load_extras(directory)
        saved = meta["palette"]
        if meta["beta"] != model.beta:
            raise SemflowInputError(f"{config_path}: beta {meta['beta']} differs from the {model.beta} that model.beta "
                                    f"gives; the file was edited (set model.beta, or retrain)")
        if (saved.get("num_classes"), saved.get("ignore_index")) != (model.palette.num_classes,
                                                                     model.palette.ignore_index):
            raise SemflowInputError(f"{config_path}: palette for {saved.get('num_classes')} classes (ignore "
                                    f"{saved.get('ignore_index')}), but the data set has {model.palette.num_classes} "
                                    f"(ignore {model.palette.ignore_index}); the file was edited")
        if (saved.get("k"), saved.get("s"), saved.get("slots")) != (model.palette.k, model.palette.s, None):
            raise SemflowInputError(
                f"{config_path}: trained with the palette k={saved.get('k')}, s={saved.get('s')}"
                + (f", slots={saved.get('slots')}" if saved.get("slots") is not None else "")
                + f", but this semflow draws these classes with k={model.palette.k}, s={model.palette.s} (an old "
                "spread palette put a class on the white ignore colour); retrain the model"
            )
        return model.eval()

    # ------------------------------------------------------------------ the codec's two ends
    def _param(self) -> torch.Tensor:
        return next(self.trainable.parameters())

    def encode_images(self, images: torch.Tensor, sample: bool = False,
                      generator: torch.Generator | None = None) -> torch.Tensor:
        """Images ``(B, 3, h, w)`` in ``[0, 1]`` at the model size to latents ``(B, C, h/f, w/f)`` (SemFlow's ``z0``)."""
        return self.codec.encode_image(images, sample=sample, generator=generator)

    def encode_masks(self, labels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Class maps ``(B, h, w)`` at the model size, perturbed by ``U(-beta, beta)``, to latents (SemFlow's ``z1``)."""
        pseudo = self.palette.encode(labels)
        noisy = perturb(pseudo, self.beta, generator=generator)
        return self.codec.encode_mask(noisy / 255.0)

    def decode_pseudo_masks(self, z1: torch.Tensor) -> torch.Tensor:
        """``D(z1)`` in pixel levels, ``(B, 3, h, w)``, unclamped."""
        return self.codec.decode(z1) * 255.0

    @torch.no_grad()
    def encode_input(self, images: ImageInput) -> torch.Tensor:
        """What :meth:`segment` starts from: images ``(B, 3, H, W)`` in ``[0, 1]`` (or any form
        :func:`semflow.images.as_images` takes), any size, resized to the model size on the network's device and
        dtype and encoded to latents ``(B, C, h/f, w/f)`` (the posterior mode)."""
        images = as_images(images)
        p = self._param()
        return self.encode_images(resize_image(images.to(device=p.device, dtype=torch.float32), self.size).to(p.dtype))

    def _labels_from_mask_latent(self, z1: torch.Tensor, in_size: tuple[int, int],
                                 trajectory: torch.Tensor | None = None) -> SegmentationOutput:
        pseudo = self.decode_pseudo_masks(z1).float()
        labels = resize_label(self.palette.decode(pseudo), in_size)  # type: ignore[arg-type]
        return SegmentationOutput(labels=labels, pseudo_mask=pseudo, trajectory=trajectory)

    # ------------------------------------------------------------------ what each method defines
    def prepare_training(self, scenes: Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]]) -> str | None:
        """Called by the training loop once, before the first step, with what a method may need from the training
        data: ``scenes()`` yields batches ``(latents, labels)`` of up to 512 evenly spaced training scenes, each
        whole (resized to the model size, no crop or flip): image latents ``(B, C, h, w)`` (the posterior mode, as
        :meth:`encode_input` gives them) and class maps ``(B, H, W)``. Returns a line for the log, or ``None``
        (nothing needed: the default, which never calls ``scenes``)."""
        return None

    def finish_training(self, scenes: Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]]) -> str | None:
        """Called by the training loop once, after the last step and before the model is written, with training
        scenes to settle what a method measures on the trained model: ``scenes()`` yields batches ``(images, labels)``
        of up to 16 evenly spaced training scenes, each whole, resized to the model size: images ``(B, 3, h, w)`` in
        ``[0, 1]`` and class maps ``(B, h, w)``. Returns a line for the log, or ``None`` (nothing to settle: the
        default, which never calls ``scenes``)."""
        return None

    def training_loss(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        trainable: nn.Module | None = None,
        generator: torch.Generator | None = None,
        at: TrainingTime | None = None,
    ) -> torch.Tensor:
        """The method's loss on one batch (a scalar).

        Args:
            images: ``(B, 3, h, w)`` in ``[0, 1]`` at the model size.
            labels: ``(B, h, w)`` class maps (ignore pixels are drawn white, as the authors do).
            trainable: the module to train (a distributed wrapper of :attr:`trainable`); default ours.
            generator: random source for everything the loss draws.
            at: where training stands (a method's objective may change over training); default the start.
        """
        with torch.no_grad():
            posterior = self.codec.image_posterior(as_images(images))
        return self.posterior_training_loss(posterior, labels, trainable=trainable, generator=generator, at=at)

    def posterior_training_loss(
        self,
        posterior: Posterior,
        labels: torch.Tensor,
        trainable: nn.Module | None = None,
        generator: torch.Generator | None = None,
        at: TrainingTime | None = None,
    ) -> torch.Tensor:
        """:meth:`training_loss` from the image posterior instead of the images (for cached latents): the
        same loss, drawing ``z_image = mean + std * eps`` first from ``generator``.

        Args:
            posterior: ``codec.image_posterior(images)``: ``mean`` and ``std`` of shape ``(B, C, h/f, w/f)``.
            labels: ``(B, h, w)`` class maps at the model size.
            trainable: the module to train (a distributed wrapper of :attr:`trainable`); default ours.
            generator: random source for everything the loss draws.
            at: where training stands; default the start.
        """
        raise NotImplementedError

    def segment(self, images: torch.Tensor, steps: int = 25, solver: str | None = None,
                return_trajectory: bool = False, latents: torch.Tensor | None = None) -> SegmentationOutput:
        """Segment images ``(B, 3, H, W)`` in ``[0, 1]``, any size, with ``steps`` steps of ``solver`` (default
        :attr:`default_solver`) into :class:`SegmentationOutput` (``latents``: :meth:`encode_input` of ``images``
        when already computed). Only where :attr:`can_segment`."""
        raise NotImplementedError

"""Codecs around a diffusers autoencoder read from a local folder (``AutoencoderKL``, ``AutoencoderTiny``).

What they share: the folder layout (``config.json`` + ``diffusion_pytorch_model.safetensors``, directly or in
a pipeline's ``vae/`` subfolder), diffusers' pixel range ``[-1, 1]``, and its latent normalisation

    z = (raw - shift_factor) * scaling_factor        raw = z / scaling_factor + shift_factor

with ``scaling_factor`` and ``shift_factor`` from the model's ``config.json`` (SD1.5's VAE: 0.18215 and none;
``AutoencoderTiny``: 1.0 and 0.0, since TAESD's latents already live in the scaled space). SemFlow's ``z``
is the normalised one, so the flow sees latents of roughly unit scale whatever the autoencoder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import torch

from semflow.codecs.pretrained import SAVED_SUBFOLDER, FrozenCodec, existing_path
from semflow.bounds import check_diffusers_folder
from semflow.errors import SemflowInputError

WEIGHT_NAME = "diffusion_pytorch_model"


def _weights_variant(folder: Path) -> str | None:
    """``None`` for ``diffusion_pytorch_model.{safetensors,bin}``, ``"fp16"`` when only that variant is there.

    Raises:
        SemflowInputError: no weight file at all.
    """
    for suffix in (".safetensors", ".bin"):
        if (folder / f"{WEIGHT_NAME}{suffix}").is_file():
            return None
    for suffix in (".safetensors", ".bin"):
        if (folder / f"{WEIGHT_NAME}.fp16{suffix}").is_file():
            return "fp16"
    raise SemflowInputError(f"{folder}: no {WEIGHT_NAME}.safetensors (or .bin) beside config.json")


class DiffusersVAECodec(FrozenCodec):
    """Base of the codecs that wrap a diffusers autoencoder; subclasses set :attr:`model_class`.

    Args:
        path: local folder holding the autoencoder's ``config.json`` and weights, or a pipeline folder
            holding them in ``vae/`` (for example a Stable Diffusion 1.5 checkpoint folder).

    Raises:
        SemflowInputError: no path, the path does not exist (a hub id is never downloaded), it lacks the files,
            or it holds another kind of model.
    """

    model_class: ClassVar[Any]  # a diffusers ModelMixin subclass

    def __init__(self, path: str | Path | None = None) -> None:
        super().__init__()
        folder = self._model_folder(path)
        variant = _weights_variant(folder)
        weights = folder / f"{WEIGHT_NAME}{'.' + variant if variant else ''}.safetensors"
        config = {k: v for k, v in json.loads((folder / "config.json").read_text()).items() if not k.startswith("_")}
        check_diffusers_folder(self.model_class, config, folder / "config.json", weights if weights.is_file() else None)
        try:
            self.vae = self.model_class.from_pretrained(
                str(folder), local_files_only=True, variant=variant
            )
        except (OSError, ValueError, RuntimeError) as err:
            raise SemflowInputError(f"{self.kind}: cannot load {folder}: {str(err).splitlines()[0]}") from None
        self.freeze()

    @classmethod
    def _model_folder(cls, path: str | Path | None) -> Path:
        """The folder holding ``config.json`` (``path`` itself or its ``vae/``), checked for the right class."""
        name = cls.model_class.__name__
        expected = (
            f"a local folder holding config.json and {WEIGHT_NAME}.safetensors of a diffusers {name} "
            f"(or a pipeline folder with them in {SAVED_SUBFOLDER}/)"
        )
        folder = existing_path(path, cls.kind, expected)
        if not folder.is_dir():
            raise SemflowInputError(f"{cls.kind}: {path} is a file; expected {expected}")
        if not (folder / "config.json").is_file() and (folder / SAVED_SUBFOLDER / "config.json").is_file():
            folder = folder / SAVED_SUBFOLDER
        config_file = folder / "config.json"
        if not config_file.is_file():
            raise SemflowInputError(f"{cls.kind}: {folder} has no config.json; expected {expected}")
        try:
            class_name = json.loads(config_file.read_text()).get("_class_name")
        except (json.JSONDecodeError, AttributeError):
            raise SemflowInputError(f"{cls.kind}: {config_file} is not a JSON object") from None
        if class_name is not None and class_name != name:
            raise SemflowInputError(f"{cls.kind}: {config_file} describes model class {class_name}; expected {name}")
        _weights_variant(folder)
        return folder

    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.latent_channels)

    @property
    def scaling_factor(self) -> float:
        """Multiplier from the autoencoder's raw latents to ``z`` (``config.json``'s ``scaling_factor``)."""
        return float(self.vae.config.get("scaling_factor", 1.0))

    @property
    def shift_factor(self) -> float:
        """Offset removed from raw latents before scaling (``config.json``'s ``shift_factor``; none: 0)."""
        return float(self.vae.config.get("shift_factor", None) or 0.0)

    def normalise(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw autoencoder latents -> ``z``: ``(raw - shift_factor) * scaling_factor``."""
        return (raw - self.shift_factor) * self.scaling_factor

    def denormalise(self, latents: torch.Tensor) -> torch.Tensor:
        """``z`` -> raw autoencoder latents: ``z / scaling_factor + shift_factor``."""
        return latents / self.scaling_factor + self.shift_factor

    def to_diffusers(self, images: torch.Tensor) -> torch.Tensor:
        """RGB ``[0, 1]`` -> diffusers' ``[-1, 1]``, in the autoencoder's dtype (never clipped)."""
        return images.to(self.vae.dtype) * 2.0 - 1.0

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents ``(B, C, h, w)`` -> RGB ``(B, 3, f*h, f*w)``, nominal ``[0, 1]``, unclamped."""
        out = self.vae.decode(self.denormalise(latents.to(self.vae.dtype))).sample
        return (out + 1.0) / 2.0

    def get_config(self) -> dict[str, Any]:
        """Nothing: the architecture and the latent normalisation travel in the saved ``config.json``."""
        return {}

    def save_weights(self, directory: Path) -> None:
        """Write ``directory/vae/config.json`` and ``directory/vae/diffusion_pytorch_model.safetensors``."""
        self.vae.save_pretrained(Path(directory) / SAVED_SUBFOLDER, safe_serialization=True)

    @classmethod
    def from_saved(cls, config: dict[str, Any], directory: Path) -> DiffusersVAECodec:
        return cls(Path(directory) / SAVED_SUBFOLDER, **config)

"""Stable Diffusion's ``UNet2DConditionModel`` as the velocity backbone, driven by a fixed null text embedding.

The SemFlow authors fine-tune SD1.5's UNet and always feed it the empty prompt's text embedding (see
:mod:`semflow.networks.null_embedding`). :class:`NullTextUNet` holds that UNet and the embedding as a buffer
``(1, 77, D)``, so it is called like any backbone, ``net(sample, timestep)``, and needs no text encoder.

Saved layout (a model folder's ``network/``)::

    network/config.json                   {"_class_name": "NullTextUNet", ...}: what is where
    network/unet/config.json              the UNet, in diffusers' layout (loads with
    network/unet/diffusion_pytorch_model.safetensors      UNet2DConditionModel.from_pretrained)
    network/null_embedding.safetensors    the null embedding (1, L, D)

``network_args`` of kind ``unet2d-condition`` (see :func:`build_unet2d_condition`):
    * any ``UNet2DConditionModel`` argument, over SD1.5's UNet config :data:`SD15_UNET` (from scratch);
    * ``pretrained``: start from a local UNet instead (a diffusers UNet folder, an SD folder holding ``unet/``,
      or a bare weights file); ``unet_config``: the ``config.json`` for a bare weights file, when it has none
      beside it;
    * ``null_embedding``: a saved embedding tensor, or ``sd``: an SD folder to compute it from (transformers).
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import torch
from diffusers import UNet2DConditionModel
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from semflow.bounds import check_diffusers_folder
from semflow.errors import SemflowInputError
from semflow.weights import UnsafePickle, load_weights_only
from semflow.networks.null_embedding import compute_null_embedding, load_null_embedding, save_null_embedding

# The architecture of Stable Diffusion 1.5's ``unet/config.json`` (the keys that differ from, or matter
# beside, diffusers' defaults). ``attention_head_dim`` is diffusers' legacy name for the number of heads.
SD15_UNET: dict[str, Any] = {
    "sample_size": 64,
    "block_out_channels": [320, 640, 1280, 1280],
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "layers_per_block": 2,
    "attention_head_dim": 8,
    "cross_attention_dim": 768,
    "norm_num_groups": 32,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
}
# Tokens in SD's text context (CLIP's ``model_max_length``); the length of a from-scratch null embedding.
CONTEXT_LENGTH = 77
UNET_SUBFOLDER = "unet"
NULL_EMBEDDING_FILE = "null_embedding.safetensors"
CLASS_NAME = "NullTextUNet"
WEIGHT_NAME = "diffusion_pytorch_model"
# network_args that are not UNet2DConditionModel arguments.
OPTIONS = ("pretrained", "unet_config", "null_embedding", "sd")


class NullTextUNet(nn.Module):
    """A ``UNet2DConditionModel`` whose cross-attention always sees one fixed text embedding.

    Args:
        unet: the UNet; its ``in_channels``/``out_channels`` are the latent channels.
        null_embedding: ``(1, L, D)`` with ``D`` the UNet's ``cross_attention_dim``; kept as a buffer (saved,
            moved with the module, never trained).
    """

    def __init__(self, unet: UNet2DConditionModel, null_embedding: torch.Tensor) -> None:
        super().__init__()
        dim = unet.config.cross_attention_dim
        fits = null_embedding.dim() == 3 and null_embedding.shape[0] == 1
        if not fits or (isinstance(dim, int) and null_embedding.shape[-1] != dim):
            raise SemflowInputError(
                f"null embedding of shape {tuple(null_embedding.shape)} does not fit the UNet; "
                f"expected (1, L, {dim}) (its cross_attention_dim)"
            )
        self.unet = unet
        self.register_buffer("null_embedding", null_embedding.to(torch.float32))

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        """``sample``: ``(B, C, h, w)``; ``timestep``: ``(B,)`` or scalar, the network's ``1000 * t``.
        Returns the UNet's output, shaped like ``sample``."""
        context = self.null_embedding.to(sample.dtype).expand(sample.shape[0], -1, -1)
        return self.unet(sample, timestep, encoder_hidden_states=context, return_dict=False)[0]

    def save_pretrained(self, directory: str | Path, safe_serialization: bool = True) -> None:
        """Write the layout in the module docstring (``safe_serialization`` applies to the UNet's weights)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.unet.save_pretrained(str(directory / UNET_SUBFOLDER), safe_serialization=safe_serialization)
        save_null_embedding(self.null_embedding, directory / NULL_EMBEDDING_FILE)
        layout = {
            "_class_name": CLASS_NAME,
            "unet_subfolder": UNET_SUBFOLDER,
            "null_embedding_file": NULL_EMBEDDING_FILE,
            "null_embedding_shape": list(self.null_embedding.shape),
        }
        (directory / "config.json").write_text(json.dumps(layout, indent=2) + "\n")


# ---------------------------------------------------------------------------------------------- reading UNets
def _first_line(err: BaseException) -> str:
    """The first line of an exception's message, for one-line errors."""
    lines = str(err).strip().splitlines()
    return lines[0].strip() if lines else type(err).__name__


def _read_json(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise SemflowInputError(f"{path} is missing; expected {what}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise SemflowInputError(f"{path}: corrupt JSON ({_first_line(err)}); expected {what}") from None
    if not isinstance(data, dict):
        raise SemflowInputError(f"{path}: not a JSON object; expected {what}")
    return data


def _unet_config(path: Path) -> dict[str, Any]:
    """A ``UNet2DConditionModel`` ``config.json`` as constructor arguments (``_``-keys dropped)."""
    config = _read_json(path, "a diffusers UNet2DConditionModel config.json")
    name = config.get("_class_name", UNet2DConditionModel.__name__)
    if name != UNet2DConditionModel.__name__:
        raise SemflowInputError(f"{path} describes a {name}; expected a UNet2DConditionModel")
    return {k: v for k, v in config.items() if not k.startswith("_")}


def _folder_weights(folder: Path) -> tuple[Path, str | None]:
    """The weights file of a diffusers folder and its variant (``None``, or ``"fp16"`` when only that exists)."""
    for variant in (None, "fp16"):
        for suffix in (".safetensors", ".bin"):
            name = WEIGHT_NAME + (f".{variant}" if variant else "") + suffix
            if (folder / name).is_file():
                return folder / name, variant
    raise SemflowInputError(f"{folder / (WEIGHT_NAME + '.safetensors')} is missing (the UNet's weights)")


def _from_folder(folder: Path) -> UNet2DConditionModel:
    """``UNet2DConditionModel.from_pretrained`` on local files, with errors that name the file."""
    config = _unet_config(folder / "config.json")
    weights, variant = _folder_weights(folder)
    check_diffusers_folder(UNet2DConditionModel, config, folder / "config.json", weights)
    if weights.suffix == ".bin":  # diffusers reads it with weights_only=True too, but hides why it refused
        load_weights_only(weights, "the UNet's weights (a state dict of tensors)", mmap=True)
    try:
        unet = UNet2DConditionModel.from_pretrained(
            str(folder), local_files_only=True, variant=variant, torch_dtype=torch.float32
        )
    except pickle.UnpicklingError:
        raise UnsafePickle(f"{weights}: refused, it holds more than tensors and numbers; loading it could run code, "
                           "so semflow reads pickled weights with weights_only=True only (convert it to safetensors)"
                           ) from None
    except (OSError, ValueError, RuntimeError, SafetensorError) as err:
        reason = _first_line(err)
        if str(folder) in reason:  # diffusers' "Unable to load weights from checkpoint file for '<path>' at '<path>'"
            reason = "corrupt or unreadable weights"
        raise SemflowInputError(f"{weights}: cannot load the UNet ({reason})") from None
    return unet


def _from_weights_file(weights: Path, config_path: Path) -> UNet2DConditionModel:
    """A UNet built on the meta device from ``config_path`` and given the tensors of one weights file."""
    config = _unet_config(config_path)
    try:
        if weights.suffix == ".safetensors":
            state = load_file(str(weights))
        else:
            state = load_weights_only(weights, "the UNet's weights (a state dict of tensors)")
    except (SafetensorError, OSError, RuntimeError, EOFError) as err:
        raise SemflowInputError(f"{weights}: corrupt or unreadable weights ({_first_line(err)})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SemflowInputError(f"{weights}: expected a state dict of tensors (diffusers' UNet weights)")
    try:
        with torch.device("meta"):  # no random initialisation of ~860M parameters that are overwritten next
            unet = UNet2DConditionModel.from_config(config)
    except (TypeError, ValueError) as err:
        raise SemflowInputError(f"{config_path}: does not make a UNet2DConditionModel ({_first_line(err)})") from None
    expected = set(unet.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise SemflowInputError(
            f"{weights}: does not match the UNet config ({len(missing)} missing tensors, e.g. {missing[:2]}; "
            f"{len(unexpected)} unexpected, e.g. {unexpected[:2]})"
        )
    try:
        unet.load_state_dict({k: v.to(torch.float32) for k, v in state.items()}, assign=True)
    except RuntimeError as err:
        # torch lists every mismatch on a line of its own after a header; the first names a tensor and shapes.
        lines = str(err).strip().splitlines()
        mismatch = (lines[1:] or lines)[0].strip()
        raise SemflowInputError(f"{weights}: does not match the UNet config ({mismatch})") from None
    return unet.eval()


def load_pretrained_unet(path: str | Path, config_file: str | Path | None = None) -> UNet2DConditionModel:
    """A float32 ``UNet2DConditionModel`` from local files (nothing is downloaded).

    Args:
        path: a diffusers UNet folder (``config.json`` + ``diffusion_pytorch_model.safetensors``/``.bin``), a
            Stable Diffusion folder holding one in ``unet/``, or a bare weights file (``.safetensors``/``.bin``,
            for example the SemFlow authors' released ``diffusion_pytorch_model.bin``).
        config_file: the ``config.json`` for a bare weights file; default: the one beside it.

    Raises:
        SemflowInputError: the path does not exist (hub ids included), or a file is missing or does not fit.
    """
    found = Path(path).expanduser()
    if not found.exists():
        raise SemflowInputError(
            f"{path} does not exist; expected a local UNet2DConditionModel folder (config.json + "
            f"{WEIGHT_NAME}.safetensors), a Stable Diffusion folder with unet/, or a weights file (never downloaded)"
        )
    if found.is_dir():
        if config_file is not None:
            raise SemflowInputError(f"unet_config={config_file} applies to a bare weights file, but {path} is a folder")
        if not (found / "config.json").is_file() and (found / UNET_SUBFOLDER / "config.json").is_file():
            found = found / UNET_SUBFOLDER
        return _from_folder(found)
    config_path = Path(config_file).expanduser() if config_file is not None else found.parent / "config.json"
    return _from_weights_file(found, config_path)


# ---------------------------------------------------------------------------------------------- the registry pair
def build_unet2d_condition(config: dict[str, Any], channels: int, out_channels: int | None = None) -> NullTextUNet:
    """A :class:`NullTextUNet` for latents with ``channels`` channels, from a model config's ``network_args``.

    Args:
        config: ``UNet2DConditionModel`` arguments over :data:`SD15_UNET` (from scratch; ``in_channels`` and
            ``out_channels`` are set to ``channels``), or ``pretrained`` (+ ``unet_config``) to start from a local
            UNet; and ``null_embedding: FILE`` or ``sd: FOLDER`` for the embedding. From scratch without either,
            the embedding is zeros ``(1, 77, cross_attention_dim)``: a constant context the network learns with.
        channels: the channels in (the codec's latent channels for SemFlow).
        out_channels: the channels out (default ``channels``).

    Raises:
        SemflowInputError: conflicting or unusable arguments, a pretrained UNet whose channels differ from the
            codec's, or unusable files.
    """
    out_channels = channels if out_channels is None else out_channels
    args = {k: v for k, v in config.items() if k not in OPTIONS}
    pretrained, unet_config = config.get("pretrained"), config.get("unet_config")
    null_file, sd = config.get("null_embedding"), config.get("sd")
    if null_file is not None and sd is not None:
        raise SemflowInputError(
            "network_args: give null_embedding (a saved tensor) or sd (a folder to compute it), not both"
        )
    if pretrained is not None:
        if args:
            raise SemflowInputError(
                f"network_args {sorted(args)} cannot change a pretrained UNet ({pretrained}); its config.json decides"
            )
        if null_file is None and sd is None:
            raise SemflowInputError(
                "a pretrained UNet needs its null text embedding: set network_args.sd=SD_FOLDER (computed with "
                "transformers) or network_args.null_embedding=FILE"
            )
        unet = load_pretrained_unet(pretrained, unet_config)
        have = (unet.config.in_channels, unet.config.out_channels)
        if have != (channels, out_channels):
            raise SemflowInputError(
                f"pretrained UNet {pretrained} takes {have[0]} and gives {have[1]} channels, but this model needs "
                f"{channels} in and {out_channels} out; use a codec with {have[0]}-channel latents (SD1.5's VAE: "
                "--codec autoencoder-kl) and model.method=semflow, or train from scratch"
            )
    else:
        if unet_config is not None:
            raise SemflowInputError("network_args.unet_config applies only with network_args.pretrained")
        try:
            unet = UNet2DConditionModel(**{**SD15_UNET, **args, "in_channels": channels, "out_channels": out_channels})
        except (TypeError, ValueError) as err:
            raise SemflowInputError(f"network_args {config} do not make a UNet2DConditionModel: {err}") from None
    if null_file is not None:
        null = load_null_embedding(null_file)
    elif sd is not None:
        null = compute_null_embedding(sd)
    else:
        null = torch.zeros(1, CONTEXT_LENGTH, int(unet.config.cross_attention_dim))
    return NullTextUNet(unet, null)


def load_unet2d_condition(directory: Path) -> NullTextUNet:
    """Load a :class:`NullTextUNet` written by :meth:`NullTextUNet.save_pretrained` (local files only).

    Raises:
        SemflowInputError: naming the missing or corrupt file.
    """
    directory = Path(directory)
    layout = _read_json(directory / "config.json", f"the {CLASS_NAME} layout file")
    if layout.get("_class_name") != CLASS_NAME:
        raise SemflowInputError(
            f"{directory / 'config.json'} describes a {layout.get('_class_name')!r}; expected {CLASS_NAME!r} "
            "(network kind unet2d-condition)"
        )
    unet = _from_folder(directory / str(layout.get("unet_subfolder", UNET_SUBFOLDER)))
    null = load_null_embedding(directory / str(layout.get("null_embedding_file", NULL_EMBEDDING_FILE)))
    return NullTextUNet(unet, null)

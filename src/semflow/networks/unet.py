"""diffusers' ``UNet2DModel`` as the velocity backbone, with a small default that trains on a CPU."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import torch
from diffusers import UNet2DModel
from safetensors import SafetensorError
from safetensors.torch import load_file

from semflow.bounds import check_diffusers_folder
from semflow.errors import SemflowInputError

# Small enough for minutes of CPU training at 32x32, deep enough (3 levels, attention at the lowest)
# to see whole shapes. Override any key through the model config's ``network_args``.
DEFAULT_UNET2D: dict[str, Any] = {
    "block_out_channels": [32, 64, 128],
    "down_block_types": ["DownBlock2D", "DownBlock2D", "AttnDownBlock2D"],
    "up_block_types": ["AttnUpBlock2D", "UpBlock2D", "UpBlock2D"],
    "layers_per_block": 1,
    "norm_num_groups": 8,
}
WEIGHTS_FILE = "diffusion_pytorch_model.safetensors"


def read_network_folder(directory: Path, what: str) -> tuple[dict[str, Any], Path, Path]:
    """A network folder's ``config.json`` (a JSON object), its path and the weights' path, both files present;
    one line naming the file otherwise (``what`` names the network in it)."""
    config_file, weights = directory / "config.json", directory / WEIGHTS_FILE
    if not config_file.is_file():
        raise SemflowInputError(f"{directory}: missing config.json of {what}")
    if not weights.is_file():
        raise SemflowInputError(f"{directory}: missing {WEIGHTS_FILE} (the weights; model folders hold safetensors only)")
    try:
        config = json.loads(config_file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SemflowInputError(f"{config_file}: corrupt JSON ({str(err).splitlines()[0]})") from None
    if not isinstance(config, dict):
        raise SemflowInputError(f"{config_file}: expected a JSON object ({what}'s config)")
    return config, config_file, weights
# Attention heads of 32 channels, or one head when the lowest level is narrower than that.
HEAD_DIM = 32


def build_unet2d(config: dict[str, Any], channels: int, out_channels: int | None = None) -> UNet2DModel:
    """A randomly initialised ``UNet2DModel`` with ``channels`` in and ``out_channels`` (default ``channels``)
    out; ``config`` overrides the default."""
    out = channels if out_channels is None else out_channels
    args = {**DEFAULT_UNET2D, **config, "in_channels": channels, "out_channels": out}
    args.setdefault("attention_head_dim", min(HEAD_DIM, int(args["block_out_channels"][-1])))
    try:
        return UNet2DModel(**args)
    except (TypeError, ValueError) as err:
        raise SemflowInputError(f"network_args {config} do not make a UNet2DModel: {err}") from None


def load_unet2d(directory: Path) -> UNet2DModel:
    """Load a ``UNet2DModel`` saved with ``save_pretrained`` (local safetensors only, never a hub or a pickle).

    Stricter than diffusers' ``from_pretrained``, which ignores unknown config keys and starts missing weights
    from random values: here each of those is an error naming the file.

    Raises:
        SemflowInputError: a missing file, a config key ``UNet2DModel`` does not take or a value it refuses,
            weights missing, unexpected or of another shape.
    """
    directory = Path(directory)
    config, config_file, weights = read_network_folder(directory, "the UNet2DModel")
    accepted = set(inspect.signature(UNet2DModel.__init__).parameters) - {"self"}
    unknown = sorted(k for k in config if not k.startswith("_") and k not in accepted)
    if unknown:
        raise SemflowInputError(f"{config_file}: unknown UNet2DModel key(s) {unknown}")
    check_diffusers_folder(UNet2DModel, {k: v for k, v in config.items() if not k.startswith("_")}, config_file,
                           weights)
    try:
        model = UNet2DModel.from_config({k: v for k, v in config.items() if not k.startswith("_")})
    except (TypeError, ValueError, KeyError, IndexError, AttributeError) as err:
        raise SemflowInputError(f"{config_file}: does not make a UNet2DModel ({str(err).splitlines()[0]})") from None
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as err:
        raise SemflowInputError(f"{weights}: truncated or corrupt ({str(err).splitlines()[0]})") from None
    load_exact(model, state, weights)
    return model.eval()


def load_exact(model: torch.nn.Module, state: dict[str, torch.Tensor], source: Path) -> None:
    """``model.load_state_dict(state)`` when ``state`` has exactly the model's tensors with their shapes."""
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise SemflowInputError(f"{source}: does not fit the network config ({len(missing)} tensors missing, e.g. "
                                f"{missing[:2]}; {len(unexpected)} unexpected, e.g. {unexpected[:2]})")
    for key, tensor in state.items():
        if tensor.shape != expected[key].shape:
            raise SemflowInputError(f"{source}: {key} has shape {tuple(tensor.shape)}, the network config gives "
                                    f"{tuple(expected[key].shape)}")
    model.load_state_dict(state)

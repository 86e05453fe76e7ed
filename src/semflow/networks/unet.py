"""diffusers' ``UNet2DModel`` as the velocity backbone, with a small default that trains on a CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from diffusers import UNet2DModel

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
    """Load a ``UNet2DModel`` saved with ``save_pretrained`` (local files only, never a hub)."""
    directory = Path(directory)
    if not (directory / "config.json").is_file():
        raise SemflowInputError(f"{directory}: missing config.json of the UNet2DModel")
    if not any(directory.glob("diffusion_pytorch_model*.safetensors")) and not any(directory.glob("*.bin")):
        raise SemflowInputError(f"{directory}: missing diffusion_pytorch_model.safetensors (the weights)")
    return UNet2DModel.from_pretrained(str(directory), local_files_only=True)

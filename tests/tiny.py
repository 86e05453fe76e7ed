"""Tiny models for the tests, defined once: a UNet that trains in a second, and diffusers autoencoders.

Plain builders (no fixtures): ``tests/`` is not a package, so test modules and helper modules import this by
name (``from tiny import TINY_NETWORK``), as pytest puts ``tests/`` on ``sys.path`` for ``conftest.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import AutoencoderKL, AutoencoderTiny

# Two UNet levels of 8 and 16 channels: a model that builds, trains and saves in well under a second.
TINY_NETWORK = {
    "block_out_channels": [8, 16],
    "down_block_types": ["DownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "UpBlock2D"],
    "norm_num_groups": 4,
    "layers_per_block": 1,
}

# The spade network at the same scale: a two-level generator and a small two-scale discriminator.
TINY_SPADE = {"block_out_channels": [8, 16], "disc_channels": 8, "disc_layers": 2, "disc_scales": 2}


def tiny_network(method: str) -> dict:
    """The tiny network arguments of a method (the spade network takes its own)."""
    return TINY_SPADE if method == "spade" else TINY_NETWORK


def tiny_train_args(out: Path, data: str = "shapes:size=16,length=32", steps: int = 2) -> list[str]:
    """``semflow train`` arguments for a tiny model."""
    return ["train", "--data", data, "--out", str(out), "--steps", str(steps), "--size", "16", "16",
            "--batch-size", "4", "--no-progress", "--set", f"model.network_args={json.dumps(TINY_NETWORK)}",
            "--set", "train.warmup_steps=1"]


def tiny_kl(scaling_factor: float = 0.5, shift_factor: float | None = 0.25) -> AutoencoderKL:
    """A random 2x-downsampling AutoencoderKL with 4 latent channels (stochastic: std > 0)."""
    return AutoencoderKL(
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(8, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=16,
        scaling_factor=scaling_factor,
        shift_factor=shift_factor,
    ).eval()


def write_tiny_kl(folder: Path, scaling_factor: float = 0.5, shift_factor: float | None = 0.25) -> AutoencoderKL:
    """:func:`tiny_kl` (seeded) saved as ``config.json`` + safetensors, the way users have them."""
    torch.manual_seed(0)
    vae = tiny_kl(scaling_factor, shift_factor)
    vae.save_pretrained(folder, safe_serialization=True)
    return vae


def write_tiny_taesd_diffusers(folder: Path) -> AutoencoderTiny:
    """A 2x-downsampling AutoencoderTiny with 4 latent channels, saved in diffusers layout."""
    torch.manual_seed(0)
    vae = AutoencoderTiny(
        encoder_block_out_channels=(8, 8),
        decoder_block_out_channels=(8, 8),
        num_encoder_blocks=(1, 1),
        num_decoder_blocks=(1, 1),
        latent_channels=4,
    ).eval()
    vae.save_pretrained(folder, safe_serialization=True)
    return vae

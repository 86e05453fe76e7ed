"""Fixtures for the codec tests: tiny random diffusers autoencoders written to disk the way users have them.

A helper module rather than ``conftest.py``: ``tests/`` is not a package, so a second ``conftest.py`` here
would shadow ``tests/conftest.py`` for ``from conftest import ...``, and this folder cannot be a package
either (it would be named ``codecs``, like the standard library module). Test modules import the fixtures.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKL, AutoencoderTiny

def write_tiny_kl(folder: Path, scaling_factor: float = 0.5, shift_factor: float | None = 0.25) -> AutoencoderKL:
    """A 2x-downsampling AutoencoderKL with 4 latent channels, saved as ``config.json`` + safetensors."""
    torch.manual_seed(0)
    vae = AutoencoderKL(
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


@pytest.fixture
def make_kl() -> object:
    """The :func:`write_tiny_kl` factory, for tests that choose the latent normalisation."""
    return write_tiny_kl


@pytest.fixture
def kl_folder(tmp_path: Path) -> Path:
    write_tiny_kl(tmp_path / "kl")
    return tmp_path / "kl"


@pytest.fixture
def tiny_folder(tmp_path: Path) -> Path:
    write_tiny_taesd_diffusers(tmp_path / "tiny")
    return tmp_path / "tiny"


@pytest.fixture
def images() -> torch.Tensor:
    """Two RGB images ``(2, 3, 16, 16)`` in ``[0, 1]``."""
    return torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))


@pytest.fixture(autouse=True)
def _one_thread() -> object:
    """Run codec tests on one intra-op thread, restoring the setting afterwards.

    On the project's 2-core CI machines, two OpenMP threads add ~45 ms of synchronisation to every
    convolution (measured: a 64-channel 3x3 conv on 8x8 takes 0.6 ms on one thread, 50 ms on two), which
    made these tests 10x slower; one thread is faster at every size used here.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

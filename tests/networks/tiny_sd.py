"""Tiny, randomly initialised Stable-Diffusion-like folders for the backbone tests.

Same file names and config keys as a real SD1.5 folder (``vae/``, ``unet/``, ``text_encoder/``,
``tokenizer/``), a few thousand parameters each. A helper module rather than ``conftest.py`` (see
``tests/codecs/tiny_autoencoders.py`` for why); test modules import what they need.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel  # noqa: F401
from tiny import TINY_NETWORK, tiny_kl

# Text embedding width of the tiny text encoder and UNet (SD1.5: 768).
WIDTH = 16
HAS_TRANSFORMERS = importlib.util.find_spec("transformers") is not None

# A two-level UNet2DConditionModel: cross-attention at the first level, as SD1.5 has at its first three.
TINY_COND_UNET = {
    "sample_size": 8,
    "block_out_channels": [8, 16],
    "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
    "layers_per_block": 1,
    "norm_num_groups": 4,
    "attention_head_dim": 2,
    "cross_attention_dim": WIDTH,
}
# The two-level UNet2DModel of tests/conftest.py.
TINY_UNET2D = TINY_NETWORK


def tiny_vae() -> AutoencoderKL:
    """A 2x-downsampling AutoencoderKL with SD's 4 latent channels and scaling factor."""
    return tiny_kl(scaling_factor=0.18215, shift_factor=None)


def tiny_unet(seed: int) -> UNet2DConditionModel:
    """A random :data:`TINY_COND_UNET` with 4 channels in and out."""
    torch.manual_seed(seed)
    return UNet2DConditionModel(**TINY_COND_UNET, in_channels=4, out_channels=4).eval()


def write_tokenizer(folder: Path) -> None:
    """A CLIP BPE tokenizer with a 4-word vocabulary; padding with the end token, as SD1.5's tokenizer."""
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "a": 2, "a</w>": 3}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), pad_token="<|endoftext|>",
                              model_max_length=77)
    tokenizer.save_pretrained(str(folder))


def tiny_text_encoder() -> torch.nn.Module:
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(2)
    config = CLIPTextConfig(vocab_size=4, hidden_size=WIDTH, intermediate_size=32, num_hidden_layers=1,
                            num_attention_heads=2, max_position_embeddings=77, bos_token_id=0, eos_token_id=1,
                            pad_token_id=1)
    return CLIPTextModel(config).eval()


def write_tiny_sd(folder: Path, text: bool = HAS_TRANSFORMERS) -> Path:
    """``folder/{vae,unet}`` (and ``text_encoder``, ``tokenizer`` when ``text``) in SD1.5's layout."""
    torch.manual_seed(1)
    tiny_vae().save_pretrained(str(folder / "vae"), safe_serialization=True)
    tiny_unet(seed=3).save_pretrained(str(folder / "unet"), safe_serialization=True)
    if text:
        write_tokenizer(folder / "tokenizer")
        tiny_text_encoder().save_pretrained(str(folder / "text_encoder"))
    return folder


def write_authors_unet(folder: Path, seed: int = 4) -> tuple[Path, UNet2DConditionModel]:
    """A 'released' UNet as the authors ship it: a bare ``diffusion_pytorch_model.bin`` state dict."""
    unet = tiny_unet(seed)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(unet.state_dict(), folder / "diffusion_pytorch_model.bin")
    return folder / "diffusion_pytorch_model.bin", unet


def null_embedding(seed: int = 5) -> torch.Tensor:
    """A stand-in empty-prompt embedding ``(1, 77, WIDTH)``."""
    return torch.randn(1, 77, WIDTH, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny SD folder per test module (written once: the text encoder is the slow part)."""
    return write_tiny_sd(tmp_path_factory.mktemp("sd") / "sd")


@pytest.fixture(autouse=True)
def _one_thread() -> object:
    """One intra-op thread: faster for these tiny convolutions on the shared 2-core machines (see
    tests/codecs/tiny_autoencoders.py)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

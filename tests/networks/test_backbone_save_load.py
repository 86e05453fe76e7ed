"""Every codec x backbone pair: a model folder reloads to bit-identical segmentation and synthesis."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from semflow.config import ModelConfig
from semflow.data import open_dataset
from semflow.errors import SemflowInputError
from semflow.networks.null_embedding import save_null_embedding
from semflow.models.semflow import SemFlowPipeline
from tiny_sd import TINY_COND_UNET, TINY_UNET2D, _one_thread, null_embedding, tiny_sd  # noqa: F401 - fixtures

SIZE = 16


def codec_args(kind: str, sd: Path) -> dict:
    return {"pixel": {}, "autoencoder-kl": {"path": str(sd / "vae")}, "taesd": {"random_init": True}}[kind]


def network_args(kind: str, null_file: Path) -> dict:
    if kind == "unet2d":
        return TINY_UNET2D
    return {**TINY_COND_UNET, "null_embedding": str(null_file)}  # a random, non-zero context


@pytest.mark.parametrize("backbone", ["unet2d", "unet2d-condition"])
@pytest.mark.parametrize("codec", ["pixel", "autoencoder-kl", "taesd"])
def test_save_load_is_bit_identical(codec: str, backbone: str, tiny_sd: Path, tmp_path: Path) -> None:
    save_null_embedding(null_embedding(), tmp_path / "null.safetensors")
    config = ModelConfig(size=[SIZE, SIZE], codec=codec, codec_args=codec_args(codec, tiny_sd), network=backbone,
                         network_args=network_args(backbone, tmp_path / "null.safetensors"))
    torch.manual_seed(0)
    pipe = SemFlowPipeline.from_config(config, open_dataset("shapes", "test").info).eval()
    pipe.save_pretrained(tmp_path / "model")
    loaded = SemFlowPipeline.from_pretrained(tmp_path / "model")

    a, b = pipe.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    g = torch.Generator().manual_seed(1)
    images, labels = torch.rand(2, 3, SIZE, SIZE, generator=g), torch.randint(0, 5, (2, SIZE, SIZE), generator=g)
    assert torch.equal(pipe.segment(images, steps=2).pseudo_mask, loaded.segment(images, steps=2).pseudo_mask)
    assert torch.equal(pipe.synthesize(labels, 2, seed=0).images, loaded.synthesize(labels, 2, seed=0).images)
    meta = json.loads((tmp_path / "model" / "semflow_config.json").read_text())
    assert meta["model"]["network"] == backbone and meta["model"]["codec"] == codec


@pytest.mark.parametrize("backbone", ["unet2d", "unet2d-condition"])
def test_a_model_with_a_damaged_network_is_refused(backbone: str, tiny_sd: Path, tmp_path: Path) -> None:
    save_null_embedding(null_embedding(), tmp_path / "null.safetensors")
    config = ModelConfig(size=[SIZE, SIZE], network=backbone, network_args=network_args(backbone, tmp_path / "null.safetensors"))
    SemFlowPipeline.from_config(config, open_dataset("shapes", "test").info).save_pretrained(tmp_path / "model")
    weights = next((tmp_path / "model" / "network").rglob("diffusion_pytorch_model.safetensors"))
    weights.write_bytes(weights.read_bytes()[:100])  # a truncated download
    with pytest.raises(SemflowInputError, match=str(weights)):
        SemFlowPipeline.from_pretrained(tmp_path / "model")

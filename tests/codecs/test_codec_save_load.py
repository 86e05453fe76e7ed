"""Every codec kind: built from a path, saved into a model folder, reloaded from that folder alone, bit for bit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from semflow.codecs import CODECS, Codec, build_codec, load_codec
from semflow.errors import SemflowInputError
from tiny_autoencoders import _one_thread, images, kl_folder, tiny_folder  # noqa: F401 - fixtures


def _build(kind: str, tmp_path: Path, kl_folder: Path, tiny_folder: Path) -> Codec:
    if kind == "pixel":
        return build_codec("pixel")
    if kind == "autoencoder-kl":
        return build_codec(kind, kl_folder)
    if kind == "autoencoder-tiny":
        return build_codec(kind, tiny_folder)
    torch.manual_seed(0)
    return CODECS[kind](random_init=True)  # taesd/taef2: untrained (no weights needed for a round trip)


@pytest.mark.parametrize("kind", sorted(CODECS))
def test_save_load_round_trip_is_bit_identical(
    kind: str, tmp_path: Path, kl_folder: Path, tiny_folder: Path, images: torch.Tensor
) -> None:
    codec = _build(kind, tmp_path, kl_folder, tiny_folder)
    model_dir = tmp_path / "model"
    codec.save_weights(model_dir)
    config = json.loads(json.dumps(codec.get_config()))  # must survive JSON
    assert "path" not in config
    reloaded = load_codec(kind, config, model_dir)

    assert type(reloaded) is type(codec)
    assert (reloaded.latent_channels, reloaded.downsample) == (codec.latent_channels, codec.downsample)
    with torch.no_grad():
        a, b = codec.image_posterior(images), reloaded.image_posterior(images)
        assert torch.equal(a.mean, b.mean) and torch.equal(a.std, b.std)
        assert torch.equal(codec.encode_mask(images), reloaded.encode_mask(images))
        z = codec.encode_image(images)
        assert z.shape == (2, *codec.latent_shape(16, 16))
        assert torch.equal(codec.decode(z), reloaded.decode(z))


@pytest.mark.parametrize("kind", sorted(set(CODECS) - {"pixel"}))
def test_pretrained_codecs_are_frozen(kind: str, tmp_path: Path, kl_folder: Path, tiny_folder: Path) -> None:
    codec = _build(kind, tmp_path, kl_folder, tiny_folder)
    assert not any(p.requires_grad for p in codec.parameters())
    assert not codec.training
    torch.nn.Sequential(codec).train()  # a parent switched to training leaves the codec in eval mode
    assert not codec.training and not any(m.training for m in codec.modules())


def test_build_codec_checks_the_path_argument(tmp_path: Path) -> None:
    with pytest.raises(SemflowInputError, match="taef2: no weights path given .*taef2_encoder.pth"):
        build_codec("taef2")
    with pytest.raises(SemflowInputError, match="no weights"):
        build_codec("pixel", tmp_path)
    with pytest.raises(SemflowInputError, match="unknown codec"):
        build_codec("sd-vae", tmp_path)

"""diffusers autoencoders as codecs: latent normalisation, posterior sampling vs mode, local-only loading."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pytest
import torch
from diffusers import AutoencoderKL, AutoencoderTiny

from semflow.codecs import AutoencoderKLCodec, AutoencoderTinyCodec
from semflow.errors import SemflowInputError
from tiny_autoencoders import _one_thread, images, kl_folder, make_kl, tiny_folder  # noqa: F401 - fixtures


@torch.no_grad()
def test_kl_posterior_is_the_normalised_latent_dist(kl_folder: Path, images: torch.Tensor) -> None:
    codec = AutoencoderKLCodec(kl_folder)
    vae = AutoencoderKL.from_pretrained(kl_folder).eval()
    dist = vae.encode(images * 2 - 1).latent_dist  # diffusers' [-1, 1] range
    sf, shift = 0.5, 0.25  # what the fixture wrote into config.json
    posterior = codec.image_posterior(images)
    assert codec.downsample == 2 and posterior.mean.shape == (2, 4, 8, 8)
    torch.testing.assert_close(posterior.mean, (dist.mean - shift) * sf, rtol=0, atol=1e-6)
    torch.testing.assert_close(posterior.std, dist.std * sf, rtol=0, atol=1e-6)
    z = posterior.mean
    torch.testing.assert_close(codec.decode(z), (vae.decode(z / sf + shift).sample + 1) / 2, rtol=0, atol=1e-6)


@torch.no_grad()
def test_kl_training_samples_images_and_takes_the_mode_for_masks(kl_folder: Path, images: torch.Tensor) -> None:
    codec = AutoencoderKLCodec(kl_folder)
    posterior = codec.image_posterior(images)
    assert bool((posterior.std > 0).all())
    # Evaluation: the mode for both.
    assert torch.equal(codec.encode_image(images), posterior.mean)
    assert torch.equal(codec.encode_mask(images), posterior.mean)
    # Training: a reparametrised sample of the image posterior, reproducible by its generator.
    draw = codec.encode_image(images, sample=True, generator=torch.Generator().manual_seed(3))
    again = codec.encode_image(images, sample=True, generator=torch.Generator().manual_seed(3))
    assert torch.equal(draw, again) and not torch.equal(draw, posterior.mean)
    eps = torch.randn(posterior.mean.shape, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(draw, posterior.mean + posterior.std * eps)


@torch.no_grad()
def test_kl_without_shift_factor_and_from_a_pipeline_folder(
    tmp_path: Path, make_kl: Callable[..., AutoencoderKL], images: torch.Tensor
) -> None:
    vae = make_kl(tmp_path / "sd" / "vae", scaling_factor=0.18215, shift_factor=None)
    (tmp_path / "sd" / "model_index.json").write_text("{}")
    codec = AutoencoderKLCodec(tmp_path / "sd")  # a pipeline folder: the codec reads its vae/
    assert codec.shift_factor == 0.0 and codec.scaling_factor == pytest.approx(0.18215)
    expected = vae.encode(images * 2 - 1).latent_dist.mean * 0.18215
    torch.testing.assert_close(codec.encode_image(images), expected, rtol=0, atol=1e-6)


@torch.no_grad()
def test_tiny_is_deterministic_and_follows_diffusers_ranges(tiny_folder: Path, images: torch.Tensor) -> None:
    codec = AutoencoderTinyCodec(tiny_folder)
    vae = AutoencoderTiny.from_pretrained(tiny_folder).eval()
    posterior = codec.image_posterior(images)
    assert codec.downsample == 2 and posterior.mean.shape == (2, 4, 8, 8)
    assert not bool(posterior.std.any())
    assert torch.equal(codec.encode_image(images, sample=True), posterior.mean)  # nothing to sample
    torch.testing.assert_close(posterior.mean, vae.encode(images * 2 - 1).latents, rtol=0, atol=0)
    z = posterior.mean
    torch.testing.assert_close(codec.decode(z), (vae.decode(z).sample + 1) / 2, rtol=0, atol=0)


@torch.no_grad()
def test_inputs_are_not_clipped(kl_folder: Path, images: torch.Tensor) -> None:
    codec = AutoencoderKLCodec(kl_folder)
    assert not torch.equal(codec.encode_mask(images * 1.2 - 0.1), codec.encode_mask((images * 1.2 - 0.1).clamp(0, 1)))


@pytest.mark.parametrize("codec_class", [AutoencoderKLCodec, AutoencoderTinyCodec])
def test_missing_path_or_hub_id_names_the_expected_files(codec_class: type, tmp_path: Path) -> None:
    for path in ("stabilityai/sd-vae-ft-mse", tmp_path / "nowhere"):
        with pytest.raises(SemflowInputError, match="does not exist; expected .*config.json.*never downloaded"):
            codec_class(path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SemflowInputError, match="has no config.json"):
        codec_class(tmp_path / "empty")
    with pytest.raises(SemflowInputError, match="no weights path given"):
        codec_class()


def test_config_without_weights_and_wrong_class_are_refused(kl_folder: Path, tiny_folder: Path) -> None:
    with pytest.raises(SemflowInputError, match="describes model class AutoencoderTiny; expected AutoencoderKL"):
        AutoencoderKLCodec(tiny_folder)
    with pytest.raises(SemflowInputError, match="describes model class AutoencoderKL; expected AutoencoderTiny"):
        AutoencoderTinyCodec(kl_folder)
    (kl_folder / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(SemflowInputError, match="no diffusion_pytorch_model.safetensors"):
        AutoencoderKLCodec(kl_folder)
    assert json.loads((kl_folder / "config.json").read_text())["_class_name"] == "AutoencoderKL"

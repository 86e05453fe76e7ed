"""The codec kind read off a weights path (``--codec-path`` without ``--codec``), and what it refuses."""

import json

import pytest
import torch
from safetensors.torch import save_file

from semflow.cli.main import main
from semflow.codecs import CODECS, build_codec
from semflow.codecs.detect import codec_kind_of
from semflow.config import LATENT_PRESETS, load_run_config
from semflow.errors import SemflowInputError

from tiny import tiny_train_args, write_tiny_kl, write_tiny_taesd_diffusers


def test_diffusers_folders_are_told_apart_by_their_class_name(tmp_path):
    write_tiny_kl(tmp_path / "kl")
    write_tiny_taesd_diffusers(tmp_path / "tiny")
    assert codec_kind_of(tmp_path / "kl") == "autoencoder-kl"
    assert codec_kind_of(tmp_path / "tiny") == "autoencoder-tiny"
    # A pipeline folder: the autoencoder in vae/ (how Stable Diffusion 1.5 ships, the paper's codec).
    write_tiny_kl(tmp_path / "pipeline" / "vae")
    assert codec_kind_of(tmp_path / "pipeline") == "autoencoder-kl"
    # and the detected kind builds from that path
    assert isinstance(build_codec(codec_kind_of(tmp_path / "pipeline"), tmp_path / "pipeline"), CODECS["autoencoder-kl"])


def test_tiny_autoencoder_files_name_their_release(tmp_path):
    for name, kind in (("taef2", "taef2"), ("taesd", "taesd"), ("taesdxl", "taesd"), ("taef1", "taesd")):
        folder = tmp_path / name
        folder.mkdir()
        for part in ("encoder", "decoder"):
            (folder / f"{name}_{part}.pth").write_bytes(b"never opened")
        assert codec_kind_of(folder) == kind
        assert codec_kind_of(folder / f"{name}_decoder.pth") == kind
    # A trained model's vae/ (encoder.safetensors): any member of the family, read off the weights.
    model = tmp_path / "model" / "vae"
    model.mkdir(parents=True)
    save_file({"w": torch.zeros(1)}, model / "encoder.safetensors")
    assert codec_kind_of(tmp_path / "model") == "taesd"


@pytest.mark.parametrize("setup, message", [
    (lambda p: None, "do not exist"),
    (lambda p: p.mkdir(), "no codec files found"),
    (lambda p: (p.mkdir(), (p / "config.json").write_text(json.dumps({"_class_name": "UNet2DModel"}))),
     "describes 'UNet2DModel'"),
    (lambda p: (p.mkdir(), (p / "config.json").write_text("{not json")), "not a readable JSON object"),
    (lambda p: p.write_text("x"), "no codec files found"),
])
def test_paths_without_a_codec_are_one_clear_line(tmp_path, setup, message):
    path = tmp_path / "weights"
    setup(path)
    with pytest.raises(SemflowInputError, match=message) as err:
        codec_kind_of(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_configuration_takes_the_codec_the_weights_hold_unless_one_is_named(tmp_path):
    write_tiny_kl(tmp_path / "kl")
    path = json.dumps(str(tmp_path / "kl"))
    assert load_run_config(None, [f"model.codec_args.path={path}"]).model.codec == "autoencoder-kl"
    named = load_run_config(None, [f"model.codec_args.path={path}", 'model.codec="autoencoder-tiny"'])
    assert named.model.codec == "autoencoder-tiny"  # named explicitly: kept (and checked later by the codec)
    assert load_run_config(None, []).model.codec == "pixel"


def test_train_with_only_codec_path_trains_in_that_latent_space(tmp_path, capsys):
    write_tiny_kl(tmp_path / "kl")
    out = tmp_path / "model"
    assert main(tiny_train_args(out) + ["--codec-path", str(tmp_path / "kl")]) == 0
    printed = capsys.readouterr().out
    assert "codec autoencoder-kl (read off" in printed
    latent_noise = LATENT_PRESETS["recommended"]["model"]["state_image_noise"]
    assert f"preset recommended in autoencoder-kl's latents: model.state_image_noise={latent_noise}" in printed
    saved = json.loads((out / "semflow_config.json").read_text())
    assert saved["model"]["codec"] == "autoencoder-kl"
    assert saved["model"]["state_image_noise"] == latent_noise
    assert main(tiny_train_args(tmp_path / "bad") + ["--codec-path", str(tmp_path / "nowhere")]) == 2
    assert not (tmp_path / "bad").exists()

"""The ``unet2d-condition`` backbone: what it computes, how it is built, and its saved folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from semflow.errors import SemflowInputError
from semflow.networks import build_network, load_network
from semflow.networks.null_embedding import save_null_embedding
from semflow.networks.unet_condition import NullTextUNet, load_pretrained_unet
from tiny_sd import (  # noqa: F401 - fixtures
    HAS_TRANSFORMERS,
    TINY_COND_UNET,
    WIDTH,
    _one_thread,
    null_embedding,
    tiny_sd,
    tiny_unet,
    write_authors_unet,
)

KIND = "unet2d-condition"


@pytest.fixture(scope="module")
def null_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("null") / "null.safetensors"
    save_null_embedding(null_embedding(), path)
    return path


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_it_is_the_unet_attending_to_the_null_text() -> None:
    unet, null = tiny_unet(seed=0), null_embedding()
    net = NullTextUNet(unet, null)
    x = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([0.0, 250.0, 1000.0])
    with torch.no_grad():
        expected = unet(x, t, encoder_hidden_states=null.repeat(3, 1, 1)).sample
        torch.testing.assert_close(net(x, t), expected, rtol=0, atol=1e-6)
    assert "null_embedding" in dict(net.named_buffers()) and all(p is not null for p in net.parameters())
    assert sum(p.numel() for p in net.parameters()) == sum(p.numel() for p in unet.parameters())


def test_from_scratch_is_sd15_with_the_codecs_channels() -> None:
    small = {k: v for k, v in TINY_COND_UNET.items() if k not in ("cross_attention_dim", "sample_size")}
    net = build_network(KIND, small, channels=3)
    config = net.unet.config
    assert (config.in_channels, config.out_channels) == (3, 3)
    assert (config.cross_attention_dim, config.sample_size) == (768, 64)  # SD1.5's, where not overridden
    assert net.null_embedding.shape == (1, 77, 768) and not net.null_embedding.any()


def test_fine_tuning_starts_from_the_sd_unet(tiny_sd: Path, null_file: Path) -> None:
    reference = load_pretrained_unet(tiny_sd / "unet")
    for pretrained in (tiny_sd, tiny_sd / "unet"):  # the SD folder or its unet/
        net = build_network(KIND, {"pretrained": str(pretrained), "null_embedding": str(null_file)}, channels=4)
        assert same_weights(net.unet, reference)
        assert torch.equal(net.null_embedding, null_embedding())
    if HAS_TRANSFORMERS:
        net = build_network(KIND, {"pretrained": str(tiny_sd), "sd": str(tiny_sd)}, channels=4)
        assert net.null_embedding.shape == (1, 77, WIDTH)


def test_a_bare_weights_file_takes_the_given_config(tiny_sd: Path, tmp_path: Path, null_file: Path) -> None:
    weights, unet = write_authors_unet(tmp_path)
    args = {"pretrained": str(weights), "unet_config": str(tiny_sd / "unet" / "config.json"), "null_embedding": str(null_file)}
    assert same_weights(build_network(KIND, args, channels=4).unet, unet)
    with pytest.raises(SemflowInputError, match=r"config.json is missing; expected a diffusers UNet2DConditionModel"):
        load_pretrained_unet(weights)  # no config.json beside it and none given
    torch.save({"conv_in.weight": torch.zeros(1)}, tmp_path / "other.bin")
    with pytest.raises(SemflowInputError, match=r"other.bin: does not match the UNet config \(\d+ missing"):
        load_pretrained_unet(tmp_path / "other.bin", tiny_sd / "unet" / "config.json")


@pytest.mark.parametrize(
    ("args", "channels", "message"),
    [
        ({"pretrained": "SD", "block_out_channels": [8, 16]}, 4, r"\['block_out_channels'\] cannot change a pretrained UNet"),
        ({"pretrained": "SD"}, 4, "needs its null text embedding: set network_args.sd=SD_FOLDER"),
        ({"pretrained": "SD", "null_embedding": "NULL", "sd": "SD"}, 4, "not both"),
        ({"pretrained": "SD", "null_embedding": "NULL"}, 3, "takes 4 and gives 4 channels, but this model needs 3 in and 3 out"),
        ({"pretrained": "runwayml/stable-diffusion-v1-5", "null_embedding": "NULL"}, 4,
         "runwayml/stable-diffusion-v1-5 does not exist; expected a local UNet2DConditionModel folder"),
        ({"pretrained": "SD/vae", "null_embedding": "NULL"}, 4, "describes a AutoencoderKL; expected a UNet2DConditionModel"),
        ({"unet_config": "SD/unet/config.json"}, 4, "unet_config applies only with network_args.pretrained"),
        ({"down_block_types": ["NoSuchBlock"]}, 4, "do not make a UNet2DConditionModel"),
        ({**TINY_COND_UNET, "null_embedding": "NULL", "cross_attention_dim": 8}, 4, r"does not fit the UNet; expected \(1, L, 8\)"),
    ],
)
def test_bad_network_args_are_one_line_errors(
    args: dict, channels: int, message: str, tiny_sd: Path, null_file: Path
) -> None:
    paths = {"SD": str(tiny_sd), "NULL": str(null_file)}
    resolved = {k: (paths.get(v) or v.replace("SD/", f"{tiny_sd}/")) if isinstance(v, str) else v for k, v in args.items()}
    with pytest.raises(SemflowInputError, match=message) as err:
        build_network(KIND, resolved, channels)
    assert "\n" not in str(err.value)


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, NullTextUNet]:
    net = NullTextUNet(tiny_unet(seed=1), null_embedding())
    folder = tmp_path_factory.mktemp("saved") / "network"
    net.save_pretrained(folder, safe_serialization=True)
    return folder, net


def test_saved_folder_is_diffusers_layout(saved: tuple[Path, NullTextUNet]) -> None:
    folder, net = saved
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
        "config.json", "null_embedding.safetensors", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
    ]
    from diffusers import UNet2DConditionModel

    plain = UNet2DConditionModel.from_pretrained(str(folder / "unet"), local_files_only=True)  # usable without semflow
    assert same_weights(plain, net.unet)
    assert same_weights(load_network(KIND, folder), net)


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
@pytest.mark.parametrize(
    "name", ["config.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors", "null_embedding.safetensors"]
)
def test_a_damaged_network_folder_names_the_file(saved: tuple[Path, NullTextUNet], tmp_path: Path, name: str, damage: str) -> None:
    folder = tmp_path / "network"
    shutil.copytree(saved[0], folder)
    if damage == "missing":
        (folder / name).unlink()
    else:
        (folder / name).write_bytes(b"\x00{ not what was saved")
    with pytest.raises(SemflowInputError, match=str(folder / name)) as err:
        load_network(KIND, folder)
    assert "\n" not in str(err.value)


def test_a_folder_of_another_kind_is_refused(tmp_path: Path) -> None:
    build_network("unet2d", {"block_out_channels": [8, 16], "down_block_types": ["DownBlock2D", "DownBlock2D"],
                             "up_block_types": ["UpBlock2D", "UpBlock2D"], "norm_num_groups": 4,
                             "layers_per_block": 1}, 3).save_pretrained(str(tmp_path))
    with pytest.raises(SemflowInputError, match="describes a 'UNet2DModel'; expected 'NullTextUNet'"):
        load_network(KIND, tmp_path)

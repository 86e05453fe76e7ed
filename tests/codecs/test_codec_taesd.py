"""The TAESD family written by hand: released key layout, the group-norm branch, file discovery, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from semflow.codecs import TAEF2Codec, TAESDCodec
from semflow.codecs.taesd_network import SoftClamp, TinyBlock, tiny_decoder, tiny_encoder
from semflow.errors import SemflowInputError
from tiny_autoencoders import _one_thread  # noqa: F401 - fixture

SHARED = Path(__file__).resolve().parents[3] / "shared"
TAEF2_WEIGHTS = SHARED / "weights" / "taef2"


def _released_keys(blocks: list[int], convs: list[int], pooled: list[int], first: int, last: int) -> set[str]:
    """State-dict keys of the released ``nn.Sequential`` layout (as in ``taef2_*.pth``)."""
    keys = {f"{i}.{p}" for i in (first, last) for p in ("weight", "bias")}
    keys |= {f"{i}.weight" for i in convs}
    keys |= {f"{i}.conv.{j}.{p}" for i in blocks for j in (0, 2, 4) for p in ("weight", "bias")}
    keys |= {f"{i}.pool.{p}" for i in pooled for p in ("0.weight", "1.weight", "1.bias", "3.weight")}
    return keys


ENCODER_KEYS = _released_keys([1, 3, 4, 5, 7, 8, 9, 11, 12, 13], [2, 6, 10], [11, 12, 13], 0, 14)
DECODER_KEYS = _released_keys([3, 4, 5, 8, 9, 10, 13, 14, 15, 18], [7, 12, 17], [3, 4, 5], 1, 19)


def test_taef2_network_has_the_released_layout() -> None:
    encoder, decoder = tiny_encoder(32, midblock_gn=True), tiny_decoder(32, midblock_gn=True)
    assert set(encoder.state_dict()) == ENCODER_KEYS and len(ENCODER_KEYS) == 79
    assert set(decoder.state_dict()) == DECODER_KEYS and len(DECODER_KEYS) == 79
    assert encoder.state_dict()["14.weight"].shape == (32, 64, 3, 3)
    assert decoder.state_dict()["1.weight"].shape == (64, 32, 3, 3)
    assert encoder.state_dict()["11.pool.0.weight"].shape == (256, 64, 1, 1)
    # Plain TAESD: the same layout without the pool branch.
    assert not any(".pool." in k for k in tiny_encoder(4).state_dict())
    z = encoder(torch.rand(1, 3, 24, 40))
    assert z.shape == (1, 32, 3, 5) and decoder(z).shape == (1, 3, 24, 40)


@pytest.mark.skipif(not TAEF2_WEIGHTS.is_dir(), reason="../shared/weights/taef2 is absent (real TAEF2 weights)")
def test_released_taef2_files_match_the_network_exactly() -> None:
    for name, module in (("encoder", tiny_encoder(32, True)), ("decoder", tiny_decoder(32, True))):
        released = torch.load(TAEF2_WEIGHTS / f"taef2_{name}.pth", map_location="cpu", weights_only=True)
        assert {k: v.shape for k, v in released.items()} == {k: v.shape for k, v in module.state_dict().items()}


def test_soft_clamp_and_group_norm_branch() -> None:
    z = torch.tensor([-30.0, -3.0, 0.0, 0.5, 30.0])
    torch.testing.assert_close(SoftClamp()(z), 3 * torch.tanh(z / 3))
    assert bool((SoftClamp()(z).abs() <= 3).all())
    # With its output projection zeroed the branch adds nothing: the block is the plain block.
    torch.manual_seed(0)
    plain, pooled = TinyBlock(8), TinyBlock(8, midblock_gn=True)
    pooled.conv.load_state_dict(plain.conv.state_dict())
    x = torch.randn(2, 8, 5, 5)
    with torch.no_grad():
        assert not torch.allclose(pooled(x), plain(x))
        pooled.pool[-1].weight.zero_()
        torch.testing.assert_close(pooled(x), plain(x), rtol=0, atol=0)
        # and relu(x + conv(x)) is what the plain block computes
        torch.testing.assert_close(plain(x), torch.relu(x + plain.conv(x)))


def _write_released(folder: Path, latent_channels: int, midblock_gn: bool, prefix: str) -> TAESDCodec:
    """Save a random codec's weights like the release does: fp16 ``PREFIX_encoder.pth``/``PREFIX_decoder.pth``."""
    torch.manual_seed(0)
    codec = TAESDCodec(latent_channels=latent_channels, midblock_gn=midblock_gn, random_init=True)
    folder.mkdir(parents=True, exist_ok=True)
    for name, module in (("encoder", codec.encoder), ("decoder", codec.decoder)):
        torch.save({k: v.half() for k, v in module.state_dict().items()}, folder / f"{prefix}_{name}.pth")
    with torch.no_grad():  # what the loaded codec must hold: the fp16 weights, exactly
        for p in codec.parameters():
            p.copy_(p.half().float())
    return codec


@torch.no_grad()
def test_released_files_load_from_folder_or_either_file(tmp_path: Path) -> None:
    reference = _write_released(tmp_path / "w", 32, True, "taef2")
    x = torch.rand(2, 3, 16, 24, generator=torch.Generator().manual_seed(0))
    for path in (tmp_path / "w", tmp_path / "w" / "taef2_encoder.pth", tmp_path / "w" / "taef2_decoder.pth"):
        for codec_class in (TAESDCodec, TAEF2Codec):  # the generic kind reads the architecture off the weights
            codec = codec_class(path)
            assert codec.get_config() == {"latent_channels": 32, "midblock_gn": True}
            posterior = codec.image_posterior(x)
            assert posterior.mean.shape == (2, 32, 2, 3) and not bool(posterior.std.any())
            assert torch.equal(posterior.mean, reference.encoder(x))
            assert torch.equal(codec.decode(posterior.mean), reference.decoder(posterior.mean))
            assert torch.equal(codec.encode_image(x, sample=True), posterior.mean)


def test_taef2_refuses_other_family_members_and_bad_files(tmp_path: Path) -> None:
    _write_released(tmp_path / "sd", 4, False, "taesd")
    assert TAESDCodec(tmp_path / "sd").get_config() == {"latent_channels": 4, "midblock_gn": False}
    with pytest.raises(SemflowInputError, match="taef2 needs latent_channels=32, midblock_gn=True"):
        TAEF2Codec(tmp_path / "sd")
    with pytest.raises(SemflowInputError, match="has latent_channels=4, expected 16"):
        TAESDCodec(tmp_path / "sd", latent_channels=16)
    with pytest.raises(SemflowInputError, match="taef2 needs"):
        TAEF2Codec(latent_channels=16, random_init=True)
    (tmp_path / "sd" / "taesd_decoder.pth").unlink()
    with pytest.raises(SemflowInputError, match="taesd_decoder.pth is missing"):
        TAESDCodec(tmp_path / "sd")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x_encoder.pth").write_bytes(b"not a pickle")
    (tmp_path / "junk" / "x_decoder.pth").write_bytes(b"not a pickle")
    with pytest.raises(SemflowInputError, match="cannot read .*x_encoder.pth"):
        TAESDCodec(tmp_path / "junk")
    torch.save({"0.weight": torch.zeros(1)}, tmp_path / "junk" / "x_encoder.pth")
    with pytest.raises(SemflowInputError, match="not a TAESD-family 8x encoder"):
        TAESDCodec(tmp_path / "junk")


def test_missing_path_or_hub_id_names_the_expected_files(tmp_path: Path) -> None:
    for path in ("madebyollin/taef2", tmp_path / "nowhere"):
        with pytest.raises(SemflowInputError, match="does not exist; expected .*taef2_encoder.pth and taef2_decoder"):
            TAEF2Codec(path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SemflowInputError, match="holds no encoder/decoder weights"):
        TAEF2Codec(tmp_path / "empty")
    with pytest.raises(SemflowInputError, match="no weights path given"):
        TAEF2Codec()  # never a silently untrained codec
    with pytest.raises(SemflowInputError, match="give no path"):
        TAEF2Codec(tmp_path / "empty", random_init=True)

"""The empty-prompt embedding: computed from a tiny SD text encoder, saved, read back, and refused when bad."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from semflow.errors import SemflowInputError
from semflow.networks.null_embedding import compute_null_embedding, load_null_embedding, save_null_embedding
from tiny_sd import HAS_TRANSFORMERS, WIDTH, _one_thread, null_embedding, tiny_text_encoder, write_tokenizer  # noqa: F401


@pytest.mark.skipif(not HAS_TRANSFORMERS, reason="transformers is an optional extra (pip install 'semflow[sd]')")
def test_empty_prompt_is_start_end_then_end_padding(tmp_path: Path) -> None:
    write_tokenizer(tmp_path / "tokenizer")
    encoder = tiny_text_encoder()
    encoder.save_pretrained(str(tmp_path / "text_encoder"))
    # SD1.5's tokenizer pads with the end token: "" is <start> <end> <end> ... (77 ids).
    ids = torch.tensor([[0] + [1] * 76])
    with torch.no_grad():
        expected = encoder(ids).last_hidden_state
    got = compute_null_embedding(tmp_path)
    assert got.shape == (1, 77, WIDTH) and got.dtype == torch.float32
    assert torch.equal(got, expected)


def test_without_transformers_the_error_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "tokenizer").mkdir()
    (tmp_path / "text_encoder").mkdir()
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers -> ImportError
    with pytest.raises(SemflowInputError, match=r"needs the transformers package: pip install 'semflow\[sd\]'"):
        compute_null_embedding(tmp_path)


def test_an_sd_folder_without_a_text_encoder_is_named(tmp_path: Path) -> None:
    (tmp_path / "tokenizer").mkdir()
    with pytest.raises(SemflowInputError, match=f"{tmp_path / 'text_encoder'} does not exist"):
        compute_null_embedding(tmp_path)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_saved_embedding_round_trip(tmp_path: Path, suffix: str) -> None:
    null = null_embedding()
    path = tmp_path / f"null{suffix}"
    if suffix == ".pt":
        torch.save(null[0].double(), path)  # (L, D) float64 as someone may have saved it
    else:
        save_null_embedding(null, path)
    loaded = load_null_embedding(path)
    assert loaded.shape == (1, 77, WIDTH) and loaded.dtype == torch.float32
    assert torch.equal(loaded, null)


def test_bad_embedding_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(SemflowInputError, match="missing.safetensors does not exist"):
        load_null_embedding(tmp_path / "missing.safetensors")
    (tmp_path / "corrupt.safetensors").write_bytes(b"\x00not safetensors")
    with pytest.raises(SemflowInputError, match="corrupt.safetensors: corrupt or unreadable"):
        load_null_embedding(tmp_path / "corrupt.safetensors")
    torch.save(torch.zeros(2, 77, WIDTH), tmp_path / "batch.pt")
    with pytest.raises(SemflowInputError, match=r"batch.pt: .* shape \(1, L, D\)"):
        load_null_embedding(tmp_path / "batch.pt")

"""Codecs E/D: pixel space and pretrained latent spaces, behind one interface (:class:`Codec`).

Kinds: ``pixel`` (no weights), ``autoencoder-kl`` and ``autoencoder-tiny`` (diffusers folders), ``taesd`` and
``taef2`` (the TAESD family's released ``.pth`` files). Pretrained kinds read local files only.

Add a codec by subclassing :class:`Codec` and registering it in :data:`CODECS` under its ``kind``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from semflow.codecs.autoencoder_kl import AutoencoderKLCodec
from semflow.codecs.autoencoder_tiny import AutoencoderTinyCodec
from semflow.codecs.base import Codec, Posterior
from semflow.codecs.pixel import PixelCodec
from semflow.codecs.taesd import TAEF2Codec, TAESDCodec
from semflow.errors import SemflowInputError

CODECS: dict[str, type[Codec]] = {
    codec.kind: codec
    for codec in (PixelCodec, AutoencoderKLCodec, AutoencoderTinyCodec, TAESDCodec, TAEF2Codec)
}
# Kinds built from nothing; every other kind needs a local path to pretrained weights.
WEIGHTLESS = frozenset({PixelCodec.kind})


def codec_class(kind: str) -> type[Codec]:
    """The codec class registered under ``kind``; a clear error for unknown kinds."""
    try:
        return CODECS[kind]
    except KeyError:
        raise SemflowInputError(f"unknown codec {kind!r}; expected one of {sorted(CODECS)}") from None


def build_codec(kind: str, path: str | Path | None = None) -> Codec:
    """A fresh codec of ``kind``: ``pixel`` takes no path, every pretrained kind needs a local ``path``.

    Args:
        kind: one of :data:`CODECS`.
        path: local weights: a diffusers autoencoder folder (or a pipeline folder with ``vae/``) for
            ``autoencoder-kl``/``autoencoder-tiny``; a folder with ``NAME_encoder.pth``/``NAME_decoder.pth``
            (or one of them) for ``taesd``/``taef2``.

    Raises:
        SemflowInputError: unknown kind, a path for ``pixel``, no path for a pretrained kind, or unusable files.
    """
    cls = codec_class(kind)
    if kind in WEIGHTLESS:
        if path is not None:
            raise SemflowInputError(f"codec {kind!r} has no weights; expected no codec path, got {path}")
        return cls()
    return cls(path)  # type: ignore[call-arg]  # pretrained kinds refuse None, naming the files they expect


def load_codec(kind: str, config: dict[str, Any], directory: Path) -> Codec:
    """Rebuild a saved codec (see :meth:`Codec.from_saved`)."""
    return codec_class(kind).from_saved(config, directory)


__all__ = [
    "CODECS",
    "WEIGHTLESS",
    "AutoencoderKLCodec",
    "AutoencoderTinyCodec",
    "Codec",
    "PixelCodec",
    "Posterior",
    "TAEF2Codec",
    "TAESDCodec",
    "build_codec",
    "codec_class",
    "load_codec",
]

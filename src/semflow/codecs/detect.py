"""Which codec kind a path of pretrained weights holds, read off file names and ``config.json`` alone.

A user who has codec weights says where they are (``--codec-path``) and gets the codec they hold without
naming its kind; nothing is loaded here (no weights are read, no pickle is opened), so a path that only
looks right still fails later, in the codec, with that codec's own message.

* A diffusers folder (``config.json`` with ``_class_name``, directly or in a pipeline's ``vae/``):
  ``AutoencoderKL`` is ``autoencoder-kl`` (Stable Diffusion's VAE, the paper's codec), ``AutoencoderTiny`` is
  ``autoencoder-tiny``.
* TAESD-family files (``NAME_encoder.pth``/``NAME_decoder.pth``, or a folder holding them, or a model folder's
  ``encoder.safetensors``): ``taef2`` where the name says so, ``taesd`` otherwise (it reads the architecture
  off the weights, so it takes every member of the family).
"""

from __future__ import annotations

import json
from pathlib import Path

from semflow.errors import SemflowInputError

# diffusers class name -> codec kind
DIFFUSERS_KINDS = {"AutoencoderKL": "autoencoder-kl", "AutoencoderTiny": "autoencoder-tiny"}
TINY_SUFFIXES = (".safetensors", ".pth", ".pt")
EXPECTED = ("a diffusers autoencoder folder (config.json naming AutoencoderKL or AutoencoderTiny, directly or in "
            "vae/) or TAESD-family weights (NAME_encoder.pth and NAME_decoder.pth, or a folder holding them)")


def _diffusers_kind(folder: Path) -> str | None:
    for config in (folder / "config.json", folder / "vae" / "config.json"):
        if not config.is_file():
            continue
        try:
            name = json.loads(config.read_text()).get("_class_name")
        except (OSError, ValueError, AttributeError):
            raise SemflowInputError(f"{config} is not a readable JSON object; expected a diffusers config") from None
        if name in DIFFUSERS_KINDS:
            return DIFFUSERS_KINDS[name]
        raise SemflowInputError(f"{config} describes {name!r}; expected one of {', '.join(DIFFUSERS_KINDS)}")
    return None


def _tiny_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path] if path.suffix in TINY_SUFFIXES else []
    found = []
    for folder in (path, path / "vae"):
        if folder.is_dir():
            found += [p for p in folder.iterdir()
                      if p.is_file() and p.suffix in TINY_SUFFIXES and ("encoder" in p.stem or "decoder" in p.stem)]
    return found


def codec_kind_of(path: str | Path) -> str:
    """The codec kind (a key of :data:`semflow.codecs.CODECS`) of the weights at ``path``.

    Raises:
        SemflowInputError: ``path`` does not exist or holds nothing a codec reads (one line naming it).
    """
    resolved = Path(path).expanduser()
    if not resolved.exists():
        raise SemflowInputError(f"codec weights {path} do not exist; expected {EXPECTED} "
                                "(weights are read from local files only, never downloaded)")
    if resolved.is_dir():
        kind = _diffusers_kind(resolved)
        if kind is not None:
            return kind
    files = _tiny_files(resolved)
    if not files:
        raise SemflowInputError(f"codec weights {path}: no codec files found; expected {EXPECTED}")
    return "taef2" if any(p.name.lower().startswith("taef2") for p in files) else "taesd"

"""TAESD-family tiny autoencoders as codecs, read from the released ``.pth`` state dicts as they are.

Kinds:
    ``taesd``: any 8x member of the family (TAESD, TAESDXL, TAEF1, TAESD3, TAEF2); the latent channels and
    the group-norm branch are read off the weights.
    ``taef2``: the FLUX.2 member only (32 latent channels, mid-block group-norm branch); other weights are
    refused.

The codec is deterministic (posterior ``std = 0``) and works in TAESD's own ranges: RGB ``[0, 1]`` in and
out (not ``[-1, 1]`` as diffusers), latents used as the network gives them, with no rescaling (TAEF2 on
CamVid test images: mean 0.06, std 0.85, |z| up to ~4.4). The decoder soft-clamps latents to ``(-3, 3)`` by
design (``tanh(z/3)*3``); its RGB output is not clamped here (the released tools clamp it to ``[0, 1]``).

Files: a folder holding ``NAME_encoder.pth`` and ``NAME_decoder.pth`` (as released, e.g. ``taef2_encoder.pth``),
either of those two files (the other is found beside it), or a folder holding ``encoder.safetensors`` and
``decoder.safetensors`` (what :meth:`TAESDCodec.save_weights` writes into a model folder's ``vae/``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from safetensors.torch import load_file, save_file

from semflow.codecs.base import Posterior
from semflow.codecs.pretrained import SAVED_SUBFOLDER, FrozenCodec, existing_path
from semflow.codecs.taesd_network import tiny_decoder, tiny_encoder
from semflow.errors import SemflowInputError
from semflow.weights import UnsafePickle, load_weights_only

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt")


def _partner(file: Path, part: str, other: str) -> Path:
    """The sibling of ``.../NAME_encoder.pth`` named ``NAME_decoder.pth`` (or the reverse)."""
    stem = file.stem
    i = stem.rfind(part)
    return file.with_name(stem[:i] + other + stem[i + len(part) :] + file.suffix)


def _pick_encoder(folder: Path, kind: str, release: str) -> Path | None:
    """The one encoder file in ``folder`` (``None`` if there is none).

    Several names: those starting with the release's name win (``taef2_encoder.pth`` for ``taef2``); one
    name in several formats: safetensors wins over pickles.
    """
    candidates = [p for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES and "encoder" in p.stem and p.is_file()]
    stems = sorted({p.stem for p in candidates})
    if len(stems) > 1:
        stems = [s for s in stems if s.startswith(release)] or stems
    if len(stems) > 1:
        raise SemflowInputError(f"{kind}: {folder} holds several encoders ({', '.join(stems)}); name the file to use")
    same = [p for p in candidates if stems and p.stem == stems[0]]
    return min(same, key=lambda p: WEIGHT_SUFFIXES.index(p.suffix)) if same else None


def find_weight_files(path: str | Path, kind: str, release: str) -> tuple[Path, Path]:
    """The ``(encoder, decoder)`` weight files that ``path`` names (see the module docstring).

    Raises:
        SemflowInputError: ``path`` is missing, or does not hold exactly one encoder/decoder pair.
    """
    expected = (
        f"a local folder holding {release}_encoder.pth and {release}_decoder.pth (the released TAESD-family "
        f"state dicts), one of those files, or a folder holding encoder.safetensors and decoder.safetensors"
    )
    found = existing_path(path, kind, expected)
    if found.is_file():
        for part, other in (("encoder", "decoder"), ("decoder", "encoder")):
            if part in found.stem:
                partner = _partner(found, part, other)
                if not partner.is_file():
                    raise SemflowInputError(f"{kind}: {partner} is missing (the {other} beside {found.name})")
                return (found, partner) if part == "encoder" else (partner, found)
        raise SemflowInputError(f"{kind}: {path} names neither an encoder nor a decoder file; expected {expected}")
    for folder in (found, found / SAVED_SUBFOLDER):
        encoder = _pick_encoder(folder, kind, release) if folder.is_dir() else None
        if encoder is not None:
            decoder = _partner(encoder, "encoder", "decoder")
            if not decoder.is_file():
                raise SemflowInputError(f"{kind}: {decoder} is missing (the decoder beside {encoder.name})")
            return encoder, decoder
    raise SemflowInputError(f"{kind}: {path} holds no encoder/decoder weights; expected {expected}")


def read_state_dict(file: Path, kind: str) -> dict[str, torch.Tensor]:
    """A plain ``{name: tensor}`` state dict from a ``.safetensors`` or ``.pth`` file, on the CPU."""
    try:
        if file.suffix == ".safetensors":
            state = load_file(file, device="cpu")
        else:
            state = load_weights_only(file, f"{kind} weights (a state dict of tensors)")
    except UnsafePickle:
        raise
    except Exception as err:  # noqa: BLE001 - any unreadable file is the user's input error
        raise SemflowInputError(f"{kind}: cannot read {file}: {str(err).splitlines()[0]}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SemflowInputError(f"{kind}: {file} is not a plain state dict of tensors")
    integer = next((k for k, v in state.items() if not v.is_floating_point()), None)
    if integer is not None:  # load_state_dict would cast it silently
        raise SemflowInputError(f"{kind}: {file}: {integer} is {state[integer].dtype}; expected floating-point weights")
    return state


def architecture_of(encoder_state: dict[str, torch.Tensor], file: Path, kind: str) -> tuple[int, bool]:
    """``(latent_channels, midblock_gn)`` read off an encoder state dict in the released layout."""
    final = f"{len(tiny_encoder(1)) - 1}.weight"  # the last convolution maps 64 channels to the latent
    if final not in encoder_state or encoder_state[final].dim() != 4:
        raise SemflowInputError(f"{kind}: {file} is not a TAESD-family 8x encoder (no {final!r} convolution)")
    midblock_gn = any(".pool." in key for key in encoder_state)
    return int(encoder_state[final].shape[0]), midblock_gn


class TAESDCodec(FrozenCodec):
    """A TAESD-family tiny autoencoder.

    Args:
        path: where the weights are (see the module docstring).
        latent_channels: expected latent channels; ``None`` reads them off the weights.
        midblock_gn: expected group-norm branch; ``None`` reads it off the weights.
        random_init: build untrained weights instead of reading ``path`` (for tests only; the
            architecture is then ``latent_channels``/``midblock_gn``, by default the kind's own).

    Raises:
        SemflowInputError: no path (without ``random_init``), a path that does not exist or lacks the
            files, or weights that are not of the expected architecture.
    """

    kind = "taesd"
    release: ClassVar[str] = "taesd"  # file prefix of the released weights, for messages
    required: ClassVar[tuple[int, bool] | None] = None  # (latent_channels, midblock_gn) a kind insists on
    default: ClassVar[tuple[int, bool]] = (4, False)

    def __init__(
        self,
        path: str | Path | None = None,
        latent_channels: int | None = None,
        midblock_gn: bool | None = None,
        *,
        random_init: bool = False,
    ) -> None:
        super().__init__()
        files: tuple[Path, ...] = ()
        states: list[dict[str, torch.Tensor]] = []
        if random_init:
            if path is not None:
                raise SemflowInputError(f"{self.kind}: random_init builds untrained weights; give no path with it")
            channels, gn = self.required or self.default
            channels = channels if latent_channels is None else latent_channels
            gn = gn if midblock_gn is None else midblock_gn
        else:
            files = find_weight_files(path, self.kind, self.release)
            states = [read_state_dict(files[0], self.kind)]
            channels, gn = architecture_of(states[0], files[0], self.kind)
            states.append(read_state_dict(files[1], self.kind))
            for name, want, got in (("latent_channels", latent_channels, channels), ("midblock_gn", midblock_gn, gn)):
                if want is not None and want != got:
                    raise SemflowInputError(f"{self.kind}: {files[0]} has {name}={got}, expected {want}")
        if self.required is not None and (channels, gn) != self.required:
            raise SemflowInputError(
                f"{self.kind}: weights have latent_channels={channels}, midblock_gn={gn}; "
                f"{self.kind} needs latent_channels={self.required[0]}, midblock_gn={self.required[1]} "
                "(use kind 'taesd' for other members of the family)"
            )
        self._latent_channels, self.midblock_gn = int(channels), bool(gn)
        self.encoder = tiny_encoder(self._latent_channels, self.midblock_gn)
        self.decoder = tiny_decoder(self._latent_channels, self.midblock_gn)
        for module, state, file in zip((self.encoder, self.decoder), states, files):
            try:
                # Released weights are fp16; copying them into the fp32 modules is exact.
                module.load_state_dict(state, strict=True)
            except RuntimeError as err:
                detail = str(err).splitlines()[1].strip() if "\n" in str(err) else str(err)
                raise SemflowInputError(f"{self.kind}: {file} does not fit the architecture: {detail}") from None
        self.freeze()

    @property
    def latent_channels(self) -> int:
        return self._latent_channels

    @property
    def downsample(self) -> int:
        return 8

    def image_posterior(self, images: torch.Tensor) -> Posterior:
        """RGB ``(B, 3, H, W)`` in ``[0, 1]`` (not clipped) -> point mass at ``z`` ``(B, C, H/8, W/8)``."""
        dtype = self.decoder[-1].weight.dtype
        mean = self.encoder(images.to(dtype))
        return Posterior(mean=mean, std=torch.zeros_like(mean))

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """``z`` ``(B, C, h, w)`` -> RGB ``(B, 3, 8h, 8w)``, nominal ``[0, 1]``, unclamped."""
        return self.decoder(latents.to(self.decoder[-1].weight.dtype))

    def get_config(self) -> dict[str, Any]:
        return {"latent_channels": self._latent_channels, "midblock_gn": self.midblock_gn}

    def save_weights(self, directory: Path) -> None:
        """Write ``directory/vae/encoder.safetensors`` and ``decoder.safetensors`` (released key layout)."""
        folder = Path(directory) / SAVED_SUBFOLDER
        folder.mkdir(parents=True, exist_ok=True)
        for name, module in (("encoder", self.encoder), ("decoder", self.decoder)):
            state = {k: v.detach().contiguous() for k, v in module.state_dict().items()}
            save_file(state, folder / f"{name}.safetensors")

    @classmethod
    def from_saved(cls, config: dict[str, Any], directory: Path) -> TAESDCodec:
        return cls(Path(directory) / SAVED_SUBFOLDER, **config)


class TAEF2Codec(TAESDCodec):
    """TAEF2, the FLUX.2 member: 32 latent channels, mid-block group-norm branch (same arguments)."""

    kind = "taef2"
    release = "taef2"
    required = (32, True)

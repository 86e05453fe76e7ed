"""What every pretrained codec shares: frozen weights, local files only, and the model folder's ``vae/``.

A pretrained codec is never trained by SemFlow: its parameters are frozen and it stays in eval mode even
when a parent module is switched to training. Its weights come from a local path only (nothing is ever
downloaded); a path that does not exist, such as a hub id, is a :class:`SemflowInputError` naming the files
expected there. A trained SemFlow model keeps its codec's weights in the subfolder :data:`SAVED_SUBFOLDER`
of the model folder, so that folder alone reloads it.
"""

from __future__ import annotations

from pathlib import Path

from semflow.codecs.base import Codec
from semflow.errors import SemflowInputError

# Subfolder of a model folder that holds the codec's weights (the diffusers pipeline layout).
SAVED_SUBFOLDER = "vae"


class FrozenCodec(Codec):
    """A codec whose weights are fixed: no gradients to its parameters, always in eval mode."""

    def freeze(self) -> None:
        """Turn off gradients of every parameter and switch to eval mode (call at the end of ``__init__``)."""
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> FrozenCodec:
        """Stay in eval mode: a frozen codec has no training behaviour, whatever its parent's mode."""
        return super().train(False)


def existing_path(path: str | Path | None, kind: str, expected: str) -> Path:
    """``path`` as a :class:`Path`, or a one-line error naming what was expected there.

    Args:
        path: a local file or folder (``None``: none was given).
        kind: the codec kind, to start the message.
        expected: what should be there, for example ``"a folder holding config.json and ..."``.

    Raises:
        SemflowInputError: no path, or ``path`` does not exist (hub ids are never downloaded).
    """
    if path is None:
        raise SemflowInputError(f"{kind}: no weights path given (--codec-path); expected {expected}")
    resolved = Path(path).expanduser()
    if not resolved.exists():
        raise SemflowInputError(
            f"{kind}: {path} does not exist; expected {expected} (weights are read from local files only, "
            "never downloaded)"
        )
    return resolved

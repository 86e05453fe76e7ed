"""Reading images and label masks from disk, and writing them atomically, with errors that name the file.

Every reader raises :class:`~semflow.errors.SemflowInputError` with the file's path and the reason (missing,
not an image, truncated, wrong kind of mask), never a bare Pillow exception.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from semflow.errors import SemflowInputError

# Pillow modes whose pixels are class indices rather than colours. "P" is a palette PNG (as in Pascal VOC):
# its pixel values are the palette indices, which is what such data sets store as labels.
INDEX_MODES = ("L", "P", "I;16", "I;16B", "I;16L", "I", "1")
COLOR_MODES = ("RGB", "RGBA")

_UMASK = os.umask(0o022)  # read the process umask (os has no getter) ...
os.umask(_UMASK)  # ... and put it back


def _open(path: Path, what: str) -> Image.Image:
    try:
        image = Image.open(path)
        image.load()
    except FileNotFoundError:
        raise SemflowInputError(f"{what} {path} does not exist") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        # Pillow reports unidentifiable, truncated and corrupt files as OSError subclasses.
        raise SemflowInputError(f"cannot read {what} {path}: {err}") from None
    return image


def read_rgb(path: str | Path) -> np.ndarray:
    """Decode an image file as RGB.

    Grey, palette, CMYK and RGBA files (all occur in COCO) are converted; alpha is dropped.

    Returns:
        ``uint8`` array ``(H, W, 3)``, pixel levels ``[0, 255]``.
    """
    with _open(Path(path), "image") as image:
        return np.asarray(image.convert("RGB"))


def read_mask(path: str | Path) -> np.ndarray:
    """Decode a mask file without changing its values.

    Returns:
        Index masks (modes ``L``, ``P``, 16/32-bit, 1-bit): integer array ``(H, W)`` of the stored values
        (for ``P``, the palette indices). Colour masks (``RGB``, ``RGBA``): ``uint8`` array ``(H, W, 3)``;
        alpha is dropped.

    Raises:
        SemflowInputError: unreadable file, or a mode that is neither (for example ``LA`` or ``CMYK``).
    """
    path = Path(path)
    with _open(path, "mask") as mask:
        if mask.mode in INDEX_MODES:
            array = np.asarray(mask)
            return array.astype(np.uint8) if array.dtype == bool else array
        if mask.mode in COLOR_MODES:
            return np.asarray(mask.convert("RGB"))
        raise SemflowInputError(
            f"mask {path} has Pillow mode {mask.mode!r}; expected an index mask ({', '.join(INDEX_MODES)}) "
            f"or a colour mask ({', '.join(COLOR_MODES)})"
        )


def image_size(path: str | Path, what: str = "image") -> tuple[int, int]:
    """``(H, W)`` of an image file, read from its header only (no pixel decoding)."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            w, h = image.size
    except FileNotFoundError:
        raise SemflowInputError(f"{what} {path} does not exist") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise SemflowInputError(f"cannot read {what} {path}: {err}") from None
    return h, w


def _atomic(path: Path, write: object) -> None:
    """Write through a temporary file in the same folder and rename, so ``path`` is whole or absent."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise SemflowInputError(f"cannot write {path}: {err.strerror or err}") from None
    os.close(fd)
    try:
        write(tmp)  # type: ignore[operator]
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_image(array: np.ndarray, path: str | Path, quality: int = 95) -> None:
    """Write ``uint8`` RGB ``(H, W, 3)`` or index ``(H, W)`` pixels atomically; the format follows the suffix.

    JPEG uses ``quality`` (1..100); PNG is lossless. Index masks must fit 8 bits (``0..255``).
    """
    path = Path(path)
    if array.dtype != np.uint8:
        raise SemflowInputError(f"write_image {path}: expected uint8 pixels, got {array.dtype}")
    image = Image.fromarray(array)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG"}.get(path.suffix.lower())
    if fmt is None:
        raise SemflowInputError(f"write_image {path}: unsupported suffix; expected .jpg, .jpeg or .png")
    options = {"quality": quality} if fmt == "JPEG" else {}
    _atomic(path, lambda tmp: image.save(tmp, format=fmt, **options))


def write_text(text: str, path: str | Path) -> None:
    """Write a UTF-8 text file atomically."""
    _atomic(Path(path), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))

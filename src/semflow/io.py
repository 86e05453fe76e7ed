"""Reading images and masks with clear errors, and writing files atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from semflow.errors import SemflowInputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path`` and rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_save_png(path: Path, array: np.ndarray) -> None:
    """Save an ``(H, W)`` uint8 (index/grey) or ``(H, W, 3)`` uint8 RGB array as PNG, atomically."""
    import io

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())


def _open(path: Path) -> Image.Image:
    try:
        image = Image.open(path)
        image.load()
        return image
    except FileNotFoundError:
        raise SemflowInputError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError) as err:
        raise SemflowInputError(f"{path}: not a readable image ({err.__class__.__name__})") from None


def read_image(path: Path) -> torch.Tensor:
    """An RGB image file as uint8 ``(3, H, W)``; grey, palette and RGBA images are converted to RGB."""
    image = _open(Path(path))
    if image.mode not in ("RGB", "L", "P", "RGBA", "LA", "I;16", "I", "CMYK", "YCbCr"):
        raise SemflowInputError(f"{path}: image mode {image.mode} cannot be used; expected an RGB or grey image")
    array = np.asarray(image.convert("RGB"))
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


def read_label(path: Path) -> torch.Tensor:
    """A class-index mask (8- or 16-bit single channel, or palette PNG's indices) as int64 ``(H, W)``."""
    image = _open(Path(path))
    if image.mode not in ("L", "P", "I;16", "I"):
        raise SemflowInputError(
            f"{path}: mask mode {image.mode}; expected a single-channel class-index PNG (mode L, P or I;16)"
        )
    return torch.from_numpy(np.asarray(image).astype(np.int64))


def list_images(inputs: list[Path]) -> list[Path]:
    """Expand files and folders (their image files, sorted) into a list of image paths."""
    paths: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise SemflowInputError(f"{item}: folder has no image files ({', '.join(IMAGE_SUFFIXES)})")
            paths.extend(found)
        elif item.exists():
            paths.append(item)
        else:
            raise SemflowInputError(f"{item}: no such file or folder")
    return paths

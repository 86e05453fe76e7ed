"""Files for the commands: images and masks as tensors, atomic writes, input lists.

Decoding and atomic writing live in :mod:`semflow.data.imageio`; this module adapts them to tensors.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from semflow.data.imageio import INDEX_MODES, _atomic, read_mask, read_rgb
from semflow.errors import SemflowInputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path`` and rename it into place."""
    _atomic(Path(path), lambda tmp: Path(tmp).write_bytes(data))


def atomic_save_png(path: Path, array: np.ndarray) -> None:
    """Save an ``(H, W)`` uint8/uint16 (index/grey) or ``(H, W, 3)`` uint8 RGB array as PNG, atomically."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())


def read_image(path: Path) -> torch.Tensor:
    """An image file as RGB uint8 ``(3, H, W)``; grey, palette, CMYK and RGBA images are converted."""
    return torch.from_numpy(read_rgb(path).copy()).permute(2, 0, 1).contiguous()


def read_label(path: Path) -> torch.Tensor:
    """A class-index mask as int64 ``(H, W)``; a colour image is an error (it holds no class indices)."""
    array = read_mask(path)
    if array.ndim != 2:
        raise SemflowInputError(
            f"{path} is a colour image; expected a single-channel class-index PNG (modes {', '.join(INDEX_MODES)})"
        )
    return torch.from_numpy(array.astype(np.int64))


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

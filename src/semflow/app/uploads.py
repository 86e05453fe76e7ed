"""What the app accepts from a browser, and reading it with the command line's rules.

An upload is checked before it is decoded: its size in bytes from the file system, its size in pixels from
the image header alone, so a decompression bomb is refused without being expanded. Images are read like
``semflow segment`` reads them (any Pillow format, converted to RGB); masks like ``semflow synthesize`` reads
them (class-index PNGs), and colour masks as a folder data set reads them (:mod:`semflow.data.colormask`:
each pixel the nearest listed colour within a tolerance, anti-aliased edges accepted).
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from semflow.io import image_size, read_mask, read_rgb
from semflow.errors import SemflowInputError
from semflow.rendering import mask_labels

if TYPE_CHECKING:
    from semflow.models.base import Segmenter


# What to do about a colour the model does not know, in the page's words.
HINT = "Paint only with the class colours (the Model card lists them), or upload a class-index PNG"


@dataclass(frozen=True)
class UploadLimits:
    """The largest upload the app reads.

    Args:
        max_bytes: file size, bytes (default 20 MiB: a large photo is a few MiB).
        max_pixels: ``H * W`` (default 4096 x 4096; the model runs at its own size, but decoding, the overlay
            and the downloads are at the upload's size).
        max_files: images in one segmentation request.
    """

    max_bytes: int = 20 * 2**20
    max_pixels: int = 4096 * 4096
    max_files: int = 8


@contextlib.contextmanager
def named_by_file_name(path: Path) -> Iterator[None]:
    """Errors name the upload by its file name, not by the server's temporary path."""
    try:
        yield
    except SemflowInputError as err:
        raise SemflowInputError(str(err).replace(str(path), path.name)) from None


def check_upload(path: str | Path, limits: UploadLimits, what: str = "image") -> tuple[int, int]:
    """Check an uploaded file against ``limits`` without decoding its pixels.

    Returns:
        ``(H, W)`` from the header.

    Raises:
        SemflowInputError: too many bytes or pixels, or a file that is not an image (message names the file).
    """
    path = Path(path)
    name = path.name
    try:
        size = path.stat().st_size
    except OSError:
        raise SemflowInputError(f"{what} {name}: cannot read the uploaded file") from None
    if size > limits.max_bytes:
        raise SemflowInputError(f"{what} {name} is {size / 2**20:.1f} MiB; the limit is "
                                f"{limits.max_bytes / 2**20:.0f} MiB")
    with named_by_file_name(path):
        h, w = image_size(path, what)
    return _check_pixels(h, w, limits, f"{what} {name}")


def _check_pixels(h: int, w: int, limits: UploadLimits, named: str) -> tuple[int, int]:
    if h * w > limits.max_pixels:
        raise SemflowInputError(f"{named} is {w}x{h} = {h * w / 1e6:.1f} megapixels; the limit is "
                                f"{limits.max_pixels / 1e6:.1f} megapixels")
    return h, w


def check_canvas_image(file: Any, limits: UploadLimits) -> tuple[int, int]:
    """A picture of the Synthesize canvas (the editor's background, a layer or the composite, as Gradio receives
    it: a file, or bytes), checked like an upload before Gradio decodes it.

    Returns:
        ``(H, W)`` from the header.
    """
    if not isinstance(file, (bytes, bytearray, memoryview)):
        return check_upload(Path(getattr(file, "path", file)), limits, "canvas image")
    if len(file) > limits.max_bytes:
        raise SemflowInputError(f"canvas image is {len(file) / 2**20:.1f} MiB; the limit is "
                                f"{limits.max_bytes / 2**20:.0f} MiB")
    try:
        with Image.open(io.BytesIO(bytes(file))) as image:
            w, h = image.size
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise SemflowInputError(f"cannot read the canvas image: {err}") from None
    return _check_pixels(h, w, limits, "canvas image")


def read_image_upload(path: str | Path, limits: UploadLimits) -> np.ndarray:
    """An uploaded image as uint8 RGB ``(H, W, 3)`` in ``[0, 255]``, after :func:`check_upload`."""
    path = Path(path)
    check_upload(path, limits, "image")
    with named_by_file_name(path):
        return read_rgb(path)


def read_mask_upload(path: str | Path, pipe: Segmenter, limits: UploadLimits) -> torch.Tensor:
    """An uploaded mask as class labels.

    An index mask (8/16-bit or palette PNG) holds class indices, as for ``semflow synthesize``. A colour mask
    is read in the data set's display colours (the legend's, ``semflow segment``'s ``NAME_vis.png``) or, when
    that fails, in the pseudo-mask palette (``NAME_color.png``).

    Returns:
        int64 ``(H, W)``: classes ``0 .. C-1`` or the ignore index.

    Raises:
        SemflowInputError: too large, unreadable, labels outside the classes, or colours the model does not know.
    """
    path = Path(path)
    check_upload(path, limits, "mask")
    with named_by_file_name(path):
        stored = read_mask(path)
    labels = mask_labels(stored, pipe, path.name, hint=HINT).long()
    try:
        pipe.palette.encode(labels.unique()[None])  # classes or the ignore index, nothing else (values only)
    except SemflowInputError as err:
        raise SemflowInputError(f"mask {path.name}: {err}") from None
    return labels


def safe_stem(name: str, taken: set[str]) -> str:
    """A file stem for outputs: the upload's stem reduced to ``[A-Za-z0-9._-]``, unique among ``taken``
    (which it joins)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).stem).strip("._") or "image"
    candidate, n = stem, 1
    while candidate in taken:
        n += 1
        candidate = f"{stem}_{n}"
    taken.add(candidate)
    return candidate

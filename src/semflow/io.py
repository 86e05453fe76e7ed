"""All file reading and writing: images and label masks (as arrays and as tensors), atomic writes, input lists.

Every reader raises :class:`~semflow.errors.SemflowInputError` with the file's path and the reason (missing,
not an image, truncated, wrong kind of mask), never a bare Pillow exception. Every writer goes through
:func:`atomic_write`: a temporary file in the same folder renamed into place, so a file is whole or absent.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from PIL import Image

from semflow.errors import SemflowInputError

# Pillow modes whose pixels are class indices rather than colours. "P" is a palette PNG (as in Pascal VOC):
# its pixel values are the palette indices, which is what such data sets store as labels.
INDEX_MODES = ("L", "P", "I;16", "I;16B", "I;16L", "I", "1")
COLOR_MODES = ("RGB", "RGBA")
# Grey images wider than 8 bits (16-bit PNGs open as "I;16"), scaled to 8 bits by read_rgb.
WIDE_MODES = ("I;16", "I;16B", "I;16L", "I", "F")
# Files the commands accept as images (folders are expanded to these).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

# Write errors that are the machine's (a full disk or quota, an I/O error), not a wrong path.
MACHINE_FAULTS = (errno.ENOSPC, errno.EDQUOT, errno.EIO)

_UMASK = os.umask(0o022)  # read the process umask (os has no getter) ...
os.umask(_UMASK)  # ... and put it back


def _open(path: Path, what: str) -> Image.Image:
    check_regular_file(path, what)  # a FIFO or a device would block the read or never end
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

    Grey, palette, CMYK and RGBA files (all occur in COCO) are converted; alpha is dropped. 16-bit grey
    images are scaled to 8 bits (``v / 257``), never clipped.

    Returns:
        ``uint8`` array ``(H, W, 3)``, pixel levels ``[0, 255]``.
    """
    path = Path(path)
    with _open(path, "image") as image:
        if image.mode in WIDE_MODES:
            return np.repeat(_grey_to_8bit(np.asarray(image), image.mode, path)[..., None], 3, axis=2)
        return np.asarray(image.convert("RGB"))


def _grey_to_8bit(array: np.ndarray, mode: str, path: Path) -> np.ndarray:
    """16-bit grey levels scaled to 8 bits (``v / 257``: 65535 becomes 255), not clipped as Pillow's ``convert``
    would (which turns most of a 16-bit image white). 32-bit integer images holding 8-bit values are kept."""
    if mode == "F" or array.min(initial=0) < 0 or array.max(initial=0) > 65535:
        raise SemflowInputError(f"image {path}: Pillow mode {mode!r} with values outside 0..65535; expected an 8- or "
                                "16-bit image")
    wide = mode.startswith("I;16") or array.max(initial=0) > 255
    levels = np.rint(array.astype(np.float32) / 257.0) if wide else array
    return levels.astype(np.uint8)


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
    check_regular_file(path, what)
    try:
        with Image.open(path) as image:
            w, h = image.size
    except FileNotFoundError:
        raise SemflowInputError(f"{what} {path} does not exist") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise SemflowInputError(f"cannot read {what} {path}: {err}") from None
    return h, w


def atomic_write(path: Path, write: object) -> None:
    """Write through a temporary file in the same folder and rename, so ``path`` is whole or absent."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        if err.errno in MACHINE_FAULTS:  # the machine's fault, not the path's: reported as a failed write (exit 1)
            raise OSError(err.errno, err.strerror, str(path)) from None
        raise SemflowInputError(f"cannot write {path}: {err.strerror or err}") from None
    os.close(fd)
    try:
        write(tmp)  # type: ignore[operator]  # write(tmp_path): fills the temporary file
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_image(array: np.ndarray, path: str | Path, quality: int = 95) -> None:
    """Write ``uint8`` RGB ``(H, W, 3)`` or index ``(H, W)`` pixels atomically; the format follows the suffix.

    JPEG uses ``quality`` (1..100); PNG is lossless and also takes ``uint16`` index masks ``(H, W)`` (more than
    256 labels).
    """
    path = Path(path)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG"}.get(path.suffix.lower())
    if fmt is None:
        raise SemflowInputError(f"write_image {path}: unsupported suffix; expected .jpg, .jpeg or .png")
    if not (array.dtype == np.uint8 or (fmt == "PNG" and array.dtype == np.uint16 and array.ndim == 2)):
        raise SemflowInputError(f"write_image {path}: expected uint8 pixels (or uint16 index PNGs), got {array.dtype}")
    image = Image.fromarray(array)
    options = {"quality": quality} if fmt == "JPEG" else {}
    atomic_write(path, lambda tmp: image.save(tmp, format=fmt, **options))


def write_text(text: str, path: str | Path) -> None:
    """Write a UTF-8 text file atomically."""
    atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_bytes(data: bytes, path: str | Path) -> None:
    """Write ``data`` atomically."""
    atomic_write(Path(path), lambda tmp: Path(tmp).write_bytes(data))


def write_json(obj: dict, path: str | Path) -> None:
    """Write a JSON document (two-space indent, trailing newline) atomically."""
    import json

    write_bytes((json.dumps(obj, indent=2, sort_keys=False) + "\n").encode(), path)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Deprecated spelling of :func:`write_bytes` (arguments the other way round); kept for one release."""
    write_bytes(data, path)


def atomic_save_png(path: Path, array: np.ndarray) -> None:
    """Deprecated spelling of :func:`write_image` for PNG paths; kept for one release."""
    write_image(array, path)


def read_image(path: str | Path) -> torch.Tensor:
    """An image file as RGB uint8 ``(3, H, W)``; grey, palette, CMYK and RGBA images are converted."""
    return torch.from_numpy(read_rgb(path).copy()).permute(2, 0, 1).contiguous()


def read_label(path: str | Path) -> torch.Tensor:
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
        elif item.exists() or item.is_symlink():
            paths.append(item)
        else:
            raise SemflowInputError(f"{item}: no such file or folder")
    for path in paths:  # before any work: a FIFO would hang the run when its turn comes
        check_regular_file(path, "input")
    return paths


def files_inside(root: str | Path, parts: Iterable[str], what: str = "model folder") -> list[Path]:
    """Every file under ``root / part`` for each existing part (a file or a folder), checked to stay inside ``root``.

    Symbolic links are allowed only to places inside ``root`` (the walk follows them there, once each); every
    file must be a regular file (not a FIFO, a device or a socket, which a reader would block on or read forever).

    Raises:
        SemflowInputError: a link that leads outside ``root`` (or nowhere), or a file that is not a regular file.
    """
    root = Path(root)
    top = root.resolve()
    found: list[Path] = []
    seen: set[Path] = set()
    stack = [root / part for part in parts]
    while stack:
        path = stack.pop()
        if not os.path.lexists(path):
            continue
        real = path.resolve()
        if path.is_symlink() and real != top and top not in real.parents:
            raise SemflowInputError(f"{path} is a symbolic link to {real}, outside the {what} {root}; a {what} "
                                    "holds its own files")
        if real in seen:
            continue
        seen.add(real)
        mode = os.stat(real).st_mode
        if stat.S_ISDIR(mode):
            stack.extend(sorted(path.iterdir(), reverse=True))
        elif stat.S_ISREG(mode):
            found.append(path)
        else:
            raise SemflowInputError(f"{path} is {_file_kind(mode)}; expected a regular file in the {what}")
    return sorted(found)


def _file_kind(mode: int) -> str:
    kinds = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def check_regular_file(path: str | Path, what: str = "file") -> Path:
    """``path`` if it is a regular file (or a link to one); one line naming it if it is missing, a folder, a FIFO
    or a device (which a reader would block on or read forever)."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise SemflowInputError(f"{what} {path} does not exist") from None
    except OSError as err:
        raise SemflowInputError(f"cannot read {what} {path}: {err.strerror or err}") from None
    if stat.S_ISDIR(mode):
        raise SemflowInputError(f"{what} {path} is a folder; expected a file")
    if not stat.S_ISREG(mode):
        raise SemflowInputError(f"{what} {path} is {_file_kind(mode)}; expected a regular file")
    return path


def usual_permissions(root: str | Path) -> None:
    """Give ``root`` and everything below it the permissions of a file the user makes (``0666``/``0777`` less the
    umask): safetensors and ``tempfile`` make weights ``0600`` and folders ``0700``, unlike every other output."""
    root = Path(root)
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~_UMASK)

"""Images as the library takes them: the forms the ecosystem hands over, converted once, here.

The conventions are diffusers' image processors' (``VaeImageProcessor``): a torch tensor ``(B, 3, H, W)`` or
``(3, H, W)`` with floats in ``[0, 1]``; a numpy array ``(B, H, W, 3)`` or ``(H, W, 3)`` (channels last) with
floats in ``[0, 1]``; a PIL image or a list of them. Besides those, ``uint8`` tensors and arrays (pixel levels
``0..255``: what semflow's own data sets return as ``image``, and what image files decode to) are divided by
255, and grey images (one channel, or none) are repeated to RGB. Floats outside ``[0, 1]`` (levels ``0..255``
given as floats, or diffusers' ``[-1, 1]`` latent-side range), NaN and infinities are refused, never guessed.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from semflow.errors import SemflowInputError

#: What :func:`as_images` accepts (for signatures).
ImageInput = Any


def as_images(images: ImageInput, what: str = "images") -> torch.Tensor:
    """``images`` in any accepted form as float ``(B, 3, H, W)`` in ``[0, 1]`` (on the tensor's own device).

    Raises:
        SemflowInputError: an unknown type or shape, an integer type other than ``uint8``, NaN or infinite values,
            or floats outside ``[0, 1]`` (naming the range found).
    """
    if isinstance(images, (list, tuple)):
        return _stack([as_images(item, what) for item in images], what)
    if _is_pil(images):
        return _from_channels_last(torch.from_numpy(np.asarray(images.convert("RGB")).copy()), what)
    if isinstance(images, np.ndarray):
        if images.dtype == object:
            raise SemflowInputError(f"{what}: a numpy array of objects; expected numbers")
        return _from_channels_last(torch.from_numpy(np.ascontiguousarray(images)), what)
    if isinstance(images, torch.Tensor):
        if images.dim() == 3:
            images = images.unsqueeze(0)
        if images.dim() != 4 or images.shape[1] not in (1, 3):
            hint = " (channels last? tensors are (B, 3, H, W); numpy arrays are channels last)" if (
                images.dim() == 4 and images.shape[-1] in (1, 3)) else ""
            raise SemflowInputError(f"{what} of shape {tuple(images.shape)}; expected (B, 3, H, W) or (3, H, W){hint}")
        return _levels(images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images, what)
    raise SemflowInputError(f"{what}: a {type(images).__name__}; expected a torch tensor (B, 3, H, W), a numpy "
                            "array (H, W, 3), a PIL image or a list of them")


def _is_pil(value: Any) -> bool:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is a dependency
        return False
    return isinstance(value, Image.Image)


def _from_channels_last(array: torch.Tensor, what: str) -> torch.Tensor:
    """``(H, W)``, ``(H, W, C)`` or ``(B, H, W, C)`` with ``C`` 1 or 3, to ``(B, 3, H, W)`` in ``[0, 1]``."""
    if array.dim() == 2:
        array = array.unsqueeze(-1)
    if array.dim() == 3:
        array = array.unsqueeze(0)
    if array.dim() != 4 or array.shape[-1] not in (1, 3):
        raise SemflowInputError(f"{what}: a numpy array of shape {tuple(array.shape)}; expected (H, W, 3) or "
                                "(B, H, W, 3) (channels last, as diffusers' image processors take them)")
    array = array.permute(0, 3, 1, 2)
    return _levels(array.expand(-1, 3, -1, -1) if array.shape[1] == 1 else array, what)


def _levels(images: torch.Tensor, what: str) -> torch.Tensor:
    """uint8 levels divided by 255; floats checked to be finite and in ``[0, 1]``."""
    if images.dtype == torch.uint8:
        return images.float() / 255.0
    if images.dtype == torch.bool or not images.is_floating_point():
        raise SemflowInputError(f"{what} of dtype {images.dtype}; expected uint8 levels 0..255 or floats in [0, 1]")
    finite = torch.isfinite(images)
    if not bool(finite.all()):
        raise SemflowInputError(f"{what} hold {int((~finite).sum())} NaN or infinite value(s); expected floats in "
                                "[0, 1]")
    if images.numel() == 0:
        raise SemflowInputError(f"{what} of shape {tuple(images.shape)} hold no pixels")
    low, high = float(images.min()), float(images.max())
    if low < 0.0 or high > 1.0:
        hint = (" (levels 0..255 as floats? pass uint8, or divide by 255)" if high > 1.0 and low >= 0.0 else
                " (the [-1, 1] range? map it with (x + 1) / 2)" if low >= -1.0 and high <= 1.0 else "")
        raise SemflowInputError(f"{what} range from {low:g} to {high:g}; expected floats in [0, 1]{hint}")
    return images


def _stack(batches: Sequence[torch.Tensor], what: str) -> torch.Tensor:
    if not batches:
        raise SemflowInputError(f"{what}: an empty list; expected at least one image")
    sizes = {tuple(b.shape[-2:]) for b in batches}
    if len(sizes) > 1:
        raise SemflowInputError(f"{what}: images of different sizes {sorted(sizes)} in one list; give one size per "
                                "call (or resize them first)")
    return torch.cat(batches)

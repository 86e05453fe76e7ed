"""Pseudo-mask palette: class maps <-> RGB pseudo-masks.

SemFlow treats a segmentation mask as an RGB image so that the same codec and the same flow can carry it.
Class ``c`` becomes the colour ``s * (m0, m1, m2)`` where ``(m0, m1, m2)`` are the base-``k`` digits of ``c``::

    m0 = c // k**2,  m1 = (c - m0 * k**2) // k,  m2 = c - m0 * k**2 - m1 * k

(paper: ``k=6, s=50``). A colour image is decoded back to classes by the nearest palette colour among the
data set's classes. The ignore label is drawn white ``(255, 255, 255)``, as the authors do; it is never a
decoding target.

All colours are in pixel levels, ``[0, 255]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from semflow.errors import SemflowInputError

IGNORE_COLOR = (255, 255, 255)

# Pixels decoded per chunk: bounds the (pixels x classes) distance matrix to ~_CHUNK * C floats
# (64k x 182 x 4 bytes = 48 MB), whatever the image size.
_CHUNK = 65536


@dataclass(frozen=True)
class Palette:
    """The pseudo-mask palette of a data set.

    Args:
        num_classes: number of real classes ``C``; labels are ``0 .. C-1``.
        k: digits base; must satisfy ``C <= k**3``.
        s: colour step in pixel levels; must satisfy ``s * (k - 1) <= 255``.
        ignore_index: label drawn white and never predicted (``None``: the data set has none).
    """

    num_classes: int
    k: int = 6
    s: int = 50
    ignore_index: int | None = None

    def __post_init__(self) -> None:
        if self.k < 2:
            raise SemflowInputError(f"palette: k={self.k}; expected k >= 2")
        if self.s < 1 or self.s * (self.k - 1) > 255:
            raise SemflowInputError(
                f"palette: s={self.s} with k={self.k} gives colours up to {self.s * (self.k - 1)}; "
                "expected 1 <= s and s*(k-1) <= 255"
            )
        if self.num_classes < 1:
            raise SemflowInputError(f"palette: num_classes={self.num_classes}; expected at least 1")
        if self.num_classes > self.k**3:
            raise SemflowInputError(
                f"palette: k={self.k} holds at most k^3={self.k**3} classes, but num_classes={self.num_classes}"
            )
        if self.num_classes == self.k**3 and self.s * (self.k - 1) == IGNORE_COLOR[0]:
            raise SemflowInputError(
                f"palette: k={self.k}, s={self.s} draws class {self.num_classes - 1} white {IGNORE_COLOR}, the colour of "
                "ignored pixels; expected a palette that keeps white free (a smaller s, or a larger k)"
            )
        if self.ignore_index is not None and 0 <= self.ignore_index < self.num_classes:
            raise SemflowInputError(
                f"palette: ignore_index={self.ignore_index} is a real class (0..{self.num_classes - 1}); "
                "expected a label outside that range, such as 255"
            )

    @classmethod
    def spread(cls, num_classes: int, ignore_index: int | None = None) -> Palette:
        """A palette spread over the whole colour cube: ``k = ceil(C^(1/3))``, ``s = floor(255/(k-1))``; one more
        digit when the last class would be white, the colour of ignored pixels (``C = k^3`` and ``(k-1) | 255``:
        8, 64 and 216 classes)."""
        k = max(2, math.ceil(round(num_classes ** (1 / 3), 9)))
        if num_classes == k**3 and 255 % (k - 1) == 0:
            k += 1
        return cls(num_classes=num_classes, k=k, s=255 // (k - 1), ignore_index=ignore_index)

    @property
    def colors(self) -> torch.Tensor:
        """Palette colours of the real classes, shape ``(C, 3)``, float pixel levels in ``[0, 255]``."""
        c = torch.arange(self.num_classes)
        m0 = c // self.k**2
        m1 = (c - m0 * self.k**2) // self.k
        m2 = c - m0 * self.k**2 - m1 * self.k
        return (torch.stack([m0, m1, m2], dim=1) * self.s).float()

    def encode(self, labels: torch.Tensor) -> torch.Tensor:
        """Render class maps as pseudo-masks.

        Args:
            labels: integer class map, shape ``(..., H, W)``, values in ``0..C-1`` or ``ignore_index``.

        Returns:
            Float pseudo-mask, shape ``(..., 3, H, W)``, pixel levels in ``[0, 255]``.

        Raises:
            SemflowInputError: a label is neither a class nor the ignore index.
        """
        labels = labels.long()
        ignore = (
            labels == self.ignore_index if self.ignore_index is not None else torch.zeros_like(labels, dtype=torch.bool)
        )
        bad = ~ignore & ((labels < 0) | (labels >= self.num_classes))
        if bool(bad.any()):
            values = sorted({int(v) for v in labels[bad].unique()[:10]})
            raise SemflowInputError(
                f"mask labels {values} are outside the classes 0..{self.num_classes - 1}"
                + (f" and the ignore index {self.ignore_index}" if self.ignore_index is not None else "")
            )
        colors = torch.cat([self.colors, torch.tensor([IGNORE_COLOR], dtype=torch.float32)]).to(labels.device)
        index = torch.where(ignore, torch.full_like(labels, self.num_classes), labels)
        rgb = colors[index]  # (..., H, W, 3)
        return rgb.movedim(-1, -3).contiguous()

    def decode(self, rgb: torch.Tensor) -> torch.Tensor:
        """Classify each pixel of a colour image by the nearest palette colour.

        Memory is bounded: pixels are processed in chunks, never as one ``H*W x C`` distance tensor.

        Args:
            rgb: colour image(s), shape ``(..., 3, H, W)``, pixel levels (values outside ``[0, 255]`` are fine).

        Returns:
            Class map, shape ``(..., H, W)``, int64 in ``0..C-1`` (the ignore label is never predicted).
        """
        if rgb.dim() < 3 or rgb.shape[-3] != 3:
            raise SemflowInputError(f"palette.decode expects shape (..., 3, H, W), got {tuple(rgb.shape)}")
        lead, (h, w) = rgb.shape[:-3], rgb.shape[-2:]
        pixels = rgb.movedim(-3, -1).reshape(-1, 3).float()
        colors = self.colors.to(pixels.device)
        colors_sq = (colors**2).sum(1)
        out = torch.empty(pixels.shape[0], dtype=torch.long, device=pixels.device)
        for start in range(0, pixels.shape[0], _CHUNK):
            chunk = pixels[start : start + _CHUNK]
            # |x - c|^2 = |x|^2 - 2 x.c + |c|^2; |x|^2 is the same for every class, so it is dropped.
            dist = colors_sq - 2.0 * chunk @ colors.T
            out[start : start + _CHUNK] = dist.argmin(dim=1)
        return out.reshape(*lead, h, w)

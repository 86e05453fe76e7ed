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
        slots: the grid point of each class, ``C`` distinct numbers in ``0 .. k**3 - 1`` whose base-``k`` digits
            give its colour (``None``: class ``c`` at point ``c``, the paper's rule). See :meth:`separated`.
    """

    num_classes: int
    k: int = 6
    s: int = 50
    ignore_index: int | None = None
    slots: tuple[int, ...] | None = None

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
        if self.slots is not None:
            slots = tuple(self.slots)
            if len(slots) != self.num_classes or len(set(slots)) != len(slots) or not all(
                    isinstance(i, int) and 0 <= i < self.k**3 for i in slots):
                raise SemflowInputError(f"palette: slots={list(slots)[:12]}; expected {self.num_classes} distinct "
                                        f"grid points in 0..{self.k**3 - 1}")
            if self.s * (self.k - 1) == IGNORE_COLOR[0] and self.k**3 - 1 in slots:
                raise SemflowInputError(f"palette: slot {self.k**3 - 1} is white {IGNORE_COLOR}, the colour of "
                                        "ignored pixels; expected slots that keep white free")
            object.__setattr__(self, "slots", slots)
        elif self.num_classes == self.k**3 and self.s * (self.k - 1) == IGNORE_COLOR[0]:
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

    @classmethod
    def separated(cls, num_classes: int, ignore_index: int | None = None) -> Palette:
        """The spread palette's grid (same ``k`` and ``s``), with the classes on the grid points that lie farthest
        apart (:func:`separated_slots`), not on the first ``C`` points.

        The first ``C`` points of a grid fill its low planes first: with ``k = 3`` CamVid's 11 classes would put
        9 in the plane ``R = 0``, each 127 levels from its neighbours, with the plane's centre among them. Spread
        over corners and face centres, the nearest two are 180 levels apart and no class sits where the average
        of two others falls."""
        grid = cls.spread(num_classes, ignore_index=ignore_index)
        return cls(num_classes=num_classes, k=grid.k, s=grid.s, ignore_index=ignore_index,
                   slots=separated_slots(num_classes, grid.k))

    @property
    def colors(self) -> torch.Tensor:
        """Palette colours of the real classes, shape ``(C, 3)``, float pixel levels in ``[0, 255]``."""
        c = torch.arange(self.num_classes) if self.slots is None else torch.tensor(self.slots)
        m0 = c // self.k**2
        m1 = (c - m0 * self.k**2) // self.k
        m2 = c - m0 * self.k**2 - m1 * self.k
        return (torch.stack([m0, m1, m2], dim=1) * self.s).float()

    @property
    def min_distance(self) -> float:
        """Smallest distance between two class colours (pixel levels): ``s`` for the paper's rule, at least ``s``
        with :attr:`slots` (one class: ``s``)."""
        if self.slots is None or self.num_classes < 2:
            return float(self.s)
        return float(torch.pdist(self.colors).min())

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


def separated_slots(num_classes: int, k: int) -> tuple[int, ...]:
    """``num_classes`` points of the ``k x k x k`` grid, as far apart as a greedy pass can put them.

    For each candidate spacing ``d``, from the largest distance on the grid down, points are taken in a fixed
    order (farthest from the cube's centre first; never the all-``k-1`` corner, white, the ignore colour, unless
    every point is needed) whenever they are at least ``d`` from every point already taken; the first ``d`` that yields
    ``num_classes`` points wins. Deterministic: a function of ``(num_classes, k)`` alone, so a saved model
    rebuilds it. Returns grid indices ``m0 * k^2 + m1 * k + m2``, class ``c`` at the ``c``-th.
    """
    if not 1 <= num_classes <= k**3:
        raise SemflowInputError(f"palette: {num_classes} classes do not fit a grid of k={k} (k^3={k**3} points)")
    index = torch.arange(k**3)
    digits = torch.stack([index // k**2, index // k % k, index % k], dim=1).float()
    centre = (k - 1) / 2
    away = ((digits - centre) ** 2).sum(1)
    # The all-(k-1) corner is white (or a level from it) and ignored pixels are drawn white: left out unless
    # every point is needed.
    points = range(k**3) if num_classes == k**3 else range(k**3 - 1)
    order = sorted(points, key=lambda i: (-float(away[i]), i))
    distances = torch.cdist(digits, digits)
    for d in sorted({round(float(v), 6) for v in distances.unique()}, reverse=True):
        taken: list[int] = []
        nearest = torch.full((k**3,), float("inf"))  # each point's distance to the nearest point taken
        for i in order:
            if nearest[i] >= d - 1e-6:
                taken.append(i)
                if len(taken) == num_classes:
                    return tuple(taken)
                nearest = torch.minimum(nearest, distances[i])
    raise AssertionError("unreachable: spacing 0 takes every point")

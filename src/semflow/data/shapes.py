"""The built-in procedural data set: textured shapes on a textured background, with exact masks.

Deterministic by ``(seed, split, index)`` and cheap (a few hundred microseconds a sample), so it needs no
download and no cache. Classes: background, disc, square, triangle, ring. Each class prefers a hue range,
but the ranges overlap and every object gets brightness, stripe texture and noise, so colour alone does not
decide the class: shape and context do. Objects occlude each other.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from semflow.data.base import DatasetInfo, Sample, SegmentationDataset
from semflow.errors import SemflowInputError

CLASS_NAMES = ("background", "disc", "square", "triangle", "ring")
COLORS = ((40, 40, 40), (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200))
# Preferred hue centre per object class (degrees); +-30 degrees of jitter: neighbours (disc/triangle) overlap.
_HUE = {1: 0.0, 2: 120.0, 3: 60.0, 4: 220.0}
_SPLITS = {"train": 0, "val": 1, "test": 2}
DEFAULT_LENGTHS = {"train": 10000, "val": 256, "test": 256}


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    h = (h % 360.0) / 60.0
    c = v * s
    x = c * (1 - abs(h % 2 - 1))
    rgb = [(c, x, 0), (x, c, 0), (0, c, x), (0, x, c), (x, 0, c), (c, 0, x)][int(h) % 6]
    return np.array(rgb) + (v - c)


def _shape_mask(kind: int, yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, r: float, angle: float) -> np.ndarray:
    dy, dx = yy - cy, xx - cx
    ca, sa = math.cos(angle), math.sin(angle)
    u, v = ca * dx + sa * dy, -sa * dx + ca * dy
    if kind == 1:  # disc
        return dx**2 + dy**2 <= r**2
    if kind == 2:  # square, rotated
        return (np.abs(u) <= r * 0.85) & (np.abs(v) <= r * 0.85)
    if kind == 3:  # equilateral triangle, rotated
        inside = np.ones_like(u, dtype=bool)
        for k in range(3):
            a = angle + k * 2 * math.pi / 3
            inside &= (math.cos(a) * dx + math.sin(a) * dy) <= r * 0.6
        return inside
    # ring
    d2 = dx**2 + dy**2
    return (d2 <= r**2) & (d2 >= (0.5 * r) ** 2)


def render_shapes(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw one sample: ``image`` uint8 ``(size, size, 3)`` and ``label`` int64 ``(size, size)``."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    # Background: a random linear gradient between two dull colours, plus noise.
    c0 = _hsv_to_rgb(rng.uniform(0, 360), rng.uniform(0.0, 0.4), rng.uniform(0.2, 0.6))
    c1 = _hsv_to_rgb(rng.uniform(0, 360), rng.uniform(0.0, 0.4), rng.uniform(0.2, 0.6))
    theta = rng.uniform(0, 2 * math.pi)
    ramp = ((math.cos(theta) * xx + math.sin(theta) * yy) / size + 1) / 2
    image = c0 * (1 - ramp[..., None]) + c1 * ramp[..., None]
    label = np.zeros((size, size), dtype=np.int64)
    for _ in range(int(rng.integers(1, 4))):
        kind = int(rng.integers(1, len(CLASS_NAMES)))
        r = rng.uniform(0.16, 0.3) * size
        cy, cx = rng.uniform(r * 0.6, size - r * 0.6, size=2)
        mask = _shape_mask(kind, yy, xx, cy, cx, r, rng.uniform(0, 2 * math.pi))
        base = _hsv_to_rgb(_HUE[kind] + rng.uniform(-30, 30), rng.uniform(0.5, 1.0), rng.uniform(0.55, 1.0))
        # Texture: stripes of random direction, period and contrast.
        phi = rng.uniform(0, 2 * math.pi)
        period = rng.uniform(3, 8) * size / 32
        stripes = 1 + rng.uniform(0, 0.35) * np.sin(2 * math.pi * (math.cos(phi) * xx + math.sin(phi) * yy) / period)
        fill = np.clip(base * stripes[..., None], 0, 1)
        image = np.where(mask[..., None], fill, image)
        label[mask] = kind
    image = image + rng.normal(0, 0.03, size=image.shape)
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8), label


class ShapesDataset(SegmentationDataset):
    """Procedural shapes, deterministic by seed.

    Args:
        split: ``train``, ``val`` or ``test`` (disjoint random streams).
        size: side of the square images, pixels.
        length: number of samples in the split (default: 10000 train, 256 val/test).
        seed: base seed; the same ``(seed, split, index)`` always gives the same sample.
    """

    info = DatasetInfo(name="shapes", class_names=CLASS_NAMES, ignore_index=None, colors=COLORS)

    def __init__(self, split: str = "train", size: int = 32, length: int | None = None, seed: int = 0) -> None:
        if split not in _SPLITS:
            raise SemflowInputError(f"shapes: unknown split {split!r}; expected one of {sorted(_SPLITS)}")
        if size < 8:
            raise SemflowInputError(f"shapes: size={size}; expected at least 8 pixels")
        self.split, self.size, self.seed = split, size, seed
        self.length = DEFAULT_LENGTHS[split] if length is None else length
        if self.length < 1:
            raise SemflowInputError(f"shapes: split {split!r} would be empty (length={self.length})")

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Sample:
        if not 0 <= index < self.length:
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, _SPLITS[self.split], index])
        image, label = render_shapes(rng, self.size)
        return Sample(
            image=torch.from_numpy(image).permute(2, 0, 1).contiguous(),
            label=torch.from_numpy(label),
            name=f"shapes_{self.split}_{index:05d}",
        )

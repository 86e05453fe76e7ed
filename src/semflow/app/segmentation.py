"""The app's segmentation: images in; mask, overlay, legend, trajectory strip and files out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from semflow.data.transforms import resize_label
from semflow.files import model_batch, write_segmentation
from semflow.rendering import colorize, display_colors, pseudo_mask_rgb

if TYPE_CHECKING:
    from semflow.models.base import Segmenter

# Frames shown of a trajectory: 50 steps would make a strip too long to read; 11 show t = 0, 0.1, ... 1.
STRIP_FRAMES = 11
# Each frame is scaled (nearest, by a whole factor) to at least this height, pixels: a 32x32 model stays visible.
STRIP_MIN_HEIGHT = 96
STRIP_GAP = 4  # white pixels between frames


@dataclass(frozen=True)
class LegendRow:
    """One class of a legend: ``share`` is its fraction of the mask's pixels, in ``[0, 1]``."""

    index: int
    name: str
    color: tuple[int, int, int]
    share: float


@dataclass
class SegmentedImage:
    """What the page shows of one segmented image.

    Attributes:
        name: the output files' stem.
        image: uint8 ``(H, W, 3)`` the input.
        labels: int64 ``(H, W)`` class map at the input size.
        mask: uint8 ``(H, W, 3)`` the class map in the data set's display colours.
        legend: one row per class.
        strip: uint8 ``(h', W', 3)`` the decoded pseudo-mask along the trajectory, ``t`` from 0 to 1 left to right.
        files: the files ``semflow segment`` writes (``NAME.png``, ``NAME_color.png``, ``NAME_vis.png`` if any).
    """

    name: str
    image: np.ndarray
    labels: np.ndarray
    mask: np.ndarray
    legend: list[LegendRow]
    strip: np.ndarray
    files: list[Path]


def class_shares(labels: np.ndarray, pipe: Segmenter) -> list[LegendRow]:
    """Each class's name, display colour and share of the pixels of ``labels`` ``(H, W)``; ignored pixels
    count in the total, so shares sum to 1 only without them."""
    info = pipe.dataset
    counts = np.bincount(labels[(labels >= 0) & (labels < info.num_classes)].ravel(), minlength=info.num_classes)
    total = max(int(labels.size), 1)
    colors = display_colors(pipe)
    return [LegendRow(c, info.class_names[c], tuple(int(v) for v in colors[c]), float(counts[c]) / total)
            for c in range(info.num_classes)]


def overlay(image: np.ndarray, mask: np.ndarray, opacity: float) -> np.ndarray:
    """Blend the coloured mask over the image.

    Args:
        image: uint8 ``(H, W, 3)``.
        mask: uint8 ``(H, W, 3)``, same size.
        opacity: the mask's weight in ``[0, 1]`` (0 shows the image, 1 the mask).

    Returns:
        uint8 ``(H, W, 3)``.
    """
    a = float(np.clip(opacity, 0.0, 1.0))
    blend = (1.0 - a) * image.astype(np.float32) + a * mask.astype(np.float32)
    return np.clip(np.rint(blend), 0, 255).astype(np.uint8)


def trajectory_strip(trajectory: torch.Tensor, frames: int = STRIP_FRAMES) -> np.ndarray:
    """Frames of one image's trajectory side by side.

    Args:
        trajectory: ``(N+1, 3, h, w)`` decoded pseudo-mask levels (unclamped), ``t = 0 .. 1``.
        frames: at most this many, evenly spaced in steps, always the first and the last.

    Returns:
        uint8 ``(h * f, n * (w * f + gap) - gap, 3)`` for a whole scale factor ``f``.
    """
    n = trajectory.shape[0]
    count = min(frames, n)
    picks = sorted({round(i * (n - 1) / max(count - 1, 1)) for i in range(count)})
    h, w = trajectory.shape[-2:]
    f = max(1, -(-STRIP_MIN_HEIGHT // int(h)))
    tiles = [pseudo_mask_rgb(trajectory[j], (int(h) * f, int(w) * f)) for j in picks]
    gap = np.full((int(h) * f, STRIP_GAP, 3), 255, dtype=np.uint8)
    parts: list[np.ndarray] = []
    for tile in tiles:
        parts += [tile, gap]
    return np.concatenate(parts[:-1], axis=1)


def segment_image(pipe: Segmenter, image: np.ndarray, name: str, steps: int, solver: str | None,
                  out: Path) -> SegmentedImage:
    """Segment one image and write its files.

    Args:
        pipe: any model kind.
        image: uint8 RGB ``(H, W, 3)``, any size.
        name: stem of the files written into ``out``.
        steps: solver steps (ignored by one-pass models).
        solver: one of ``pipe.SOLVERS`` (default the model's own).
        out: folder for the files.
    """
    size = (int(image.shape[0]), int(image.shape[1]))
    # The pixels semflow segment gives the model, so the two write the same files.
    x = model_batch([torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)], pipe)
    result = pipe.segment(x, steps=steps, solver=solver, return_trajectory=True)
    labels = resize_label(result.labels[0].cpu(), size)
    files = write_segmentation(out, name, labels, result.pseudo_mask[0], pipe)
    labels_np = labels.numpy().astype(np.int64)
    strip = trajectory_strip(result.trajectory[:, 0]) if result.trajectory is not None else \
        pseudo_mask_rgb(result.pseudo_mask[0], pipe.size)
    return SegmentedImage(name=name, image=image, labels=labels_np, mask=colorize(labels_np, pipe),
                          legend=class_shares(labels_np, pipe), strip=strip, files=files)

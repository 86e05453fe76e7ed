"""The app's synthesis: a painted or uploaded mask to K images, and the images segmented back.

The canvas is painted with the data set's display colours (the legend's); :func:`mask_from_canvas` reads each
pixel as the nearest of those colours, which also resolves the brush's anti-aliased stroke edges.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from semflow.data.transforms import resize_label
from semflow.errors import SemflowInputError
from semflow.evaluation.metrics import ConfusionMatrix
from semflow.files import seeded_generators
from semflow.pseudomask.palette import IGNORE_COLOR
from semflow.rendering import colorize, display_colors

if TYPE_CHECKING:
    from semflow.models.base import Segmenter

# The canvas's longer side, pixels: big enough to paint comfortably, whatever the (often 32 px) model size.
CANVAS_LONG_SIDE = 384
# Alpha below which a canvas pixel counts as unpainted (the canvas starts filled with class 0).
OPAQUE = 128


def canvas_size(pipe: Segmenter, long_side: int = CANVAS_LONG_SIDE) -> tuple[int, int]:
    """``(H, W)`` of a canvas with the model's aspect ratio and ``long_side`` pixels on its longer side."""
    h, w = pipe.size
    scale = long_side / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def mask_to_canvas(labels: torch.Tensor, pipe: Segmenter, size: tuple[int, int] | None = None) -> np.ndarray:
    """A class map ``(H, W)`` drawn in display colours (ignore white), resized (nearest) to ``size``
    (default :func:`canvas_size`): uint8 ``(h, w, 3)``."""
    size = canvas_size(pipe) if size is None else size
    return colorize(resize_label(labels.long(), size), pipe)


def blank_canvas(pipe: Segmenter) -> np.ndarray:
    """A canvas filled with class 0 (usually the background): uint8 ``(H, W, 3)``."""
    return mask_to_canvas(torch.zeros(pipe.size, dtype=torch.long), pipe)


def mask_from_canvas(canvas: np.ndarray, pipe: Segmenter) -> torch.Tensor:
    """Read a painted canvas as classes.

    Args:
        canvas: uint8 ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA; pixels with alpha below :data:`OPAQUE` are
            unpainted and read as class 0.

    Returns:
        int64 ``(H, W)``: each pixel's nearest display colour's class (white is the ignore label where the
        model has one).
    """
    canvas = np.asarray(canvas)
    if canvas.ndim != 3 or canvas.shape[2] not in (3, 4) or canvas.size == 0:
        raise SemflowInputError(f"canvas of shape {canvas.shape}; expected an RGB or RGBA picture (H, W, 3 or 4)")
    colors = display_colors(pipe).astype(np.float32)
    labels = np.arange(len(colors))
    if pipe.dataset.ignore_index is not None:
        colors = np.concatenate([colors, np.asarray([IGNORE_COLOR], dtype=np.float32)])
        labels = np.append(labels, pipe.dataset.ignore_index)
    rgb = canvas[..., :3].astype(np.float32)
    # Few distinct colours on a canvas: classify each once.
    unique, inverse = np.unique(rgb.reshape(-1, 3), axis=0, return_inverse=True)
    nearest = ((unique[:, None, :] - colors[None]) ** 2).sum(-1).argmin(1)
    out = labels[nearest][inverse.reshape(-1)].reshape(canvas.shape[:2])
    if canvas.shape[2] == 4:
        out = np.where(canvas[..., 3] < OPAQUE, 0, out)
    return torch.from_numpy(out.astype(np.int64))


def synthesize_samples(pipe: Segmenter, labels: torch.Tensor, samples: int, seed: int, steps: int,
                       solver: str | None) -> np.ndarray:
    """``samples`` images for one mask.

    Args:
        labels: int64 ``(H, W)`` classes or the ignore index, any size (the model resizes it).
        samples: ``K >= 1``.
        seed: the same seed gives the same images, those ``semflow synthesize --seed`` writes for this mask.
        steps: solver steps from ``t = 1`` to ``0``.
        solver: one of ``pipe.SOLVERS``.

    Returns:
        uint8 ``(K, h, w, 3)`` at the model size.

    Raises:
        SemflowInputError: a model that only segments, or labels outside the model's classes.
    """
    if not pipe.can_synthesize:
        raise SemflowInputError(f"a {pipe.method} model only segments; synthesis needs a semflow, noise-flow or "
                                "spade model")
    # The mask's generator as `semflow synthesize --seed` makes it for its first mask: same seed, same images.
    # A one-pass synthesizer (spade) takes no solver: the model's own (none) is used.
    out = pipe.synthesize(labels[None], steps=steps, samples=samples, solver=solver if pipe.SOLVERS else None,
                          generator=seeded_generators(int(seed), [0]))
    images = (out.images[0].float().cpu() * 255).round().clamp(0, 255).to(torch.uint8)
    return np.ascontiguousarray(images.permute(0, 2, 3, 1).numpy())


@dataclass(frozen=True)
class SegmentedBack:
    """A synthesized image segmented again: ``mask`` uint8 ``(h, w, 3)`` in display colours; ``miou`` in
    ``[0, 1]`` against the mask it was synthesized from (classes absent from both are left out)."""

    mask: np.ndarray
    miou: float


def segment_back(pipe: Segmenter, images: np.ndarray, labels: torch.Tensor, steps: int,
                 solver: str | None) -> list[SegmentedBack]:
    """Segment each synthesized image and score it against the painted mask, at the model size.

    Args:
        images: uint8 ``(K, h, w, 3)`` from :func:`synthesize_samples`.
        labels: int64 ``(H, W)`` the mask they came from.
        steps, solver: the segmentation's.
    """
    p = next(pipe.parameters())
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div(255.0).to(p.device)
    predicted = pipe.segment(x, steps=steps, solver=solver).labels.cpu()
    target = resize_label(labels.long(), tuple(predicted.shape[-2:]))
    results = []
    for k in range(predicted.shape[0]):
        confusion = ConfusionMatrix(pipe.dataset.num_classes, pipe.dataset.ignore_index)
        confusion.update(predicted[k], target)
        results.append(SegmentedBack(mask=colorize(predicted[k], pipe), miou=confusion.scores().miou))
    return results

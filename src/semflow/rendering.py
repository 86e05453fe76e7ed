"""A segmentation as pictures: display colours and the decoded pseudo-mask as RGB.

One home for the command line, the demo report and the browser app; the files they write are
:mod:`semflow.files`'s. And back: :func:`mask_labels` reads a mask picture a user gives (class indices, or either
set of colours) as the model's classes, the same way in ``semflow synthesize`` and in the app.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from semflow.data.colormask import ColorTable
from semflow.errors import SemflowInputError
from semflow.data.transforms import resize_label
from semflow.pseudomask.palette import IGNORE_COLOR

if TYPE_CHECKING:
    from semflow.models.base import Segmenter


def display_colors(pipe: Segmenter) -> np.ndarray:
    """Colour of each class for people: the data set's own, else the pseudo-mask palette's.

    Returns:
        uint8 ``(C, 3)`` RGB in ``[0, 255]``, row ``c`` for class ``c``.
    """
    info = pipe.dataset
    if info.colors:
        return np.asarray(info.colors, dtype=np.uint8)
    return pipe.palette.colors.round().clamp(0, 255).to(torch.uint8).numpy()


def colorize(labels: torch.Tensor | np.ndarray, pipe: Segmenter) -> np.ndarray:
    """Class map ``(H, W)`` to RGB uint8 ``(H, W, 3)`` in :func:`display_colors`; ignored (or any label
    outside ``0 .. C-1``) pixels are white."""
    colors = np.concatenate([display_colors(pipe), np.asarray([IGNORE_COLOR], dtype=np.uint8)])
    index = labels.cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    index = index.astype(np.int64, copy=True)
    num_classes = pipe.dataset.num_classes
    index[(index < 0) | (index >= num_classes)] = num_classes
    return colors[index]


def pseudo_mask_rgb(pseudo_mask: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """A decoded pseudo-mask ``(3, h, w)`` in pixel levels (unclamped) as uint8 ``(H, W, 3)`` at ``size = (H, W)``
    (nearest neighbour: the colours stay palette colours)."""
    levels = pseudo_mask.detach().float().cpu().round().clamp(0, 255).to(torch.uint8)
    return np.ascontiguousarray(resize_label(levels, size).permute(1, 2, 0).numpy())


def mask_color_table(pipe: Segmenter, colors: np.ndarray, hint: str) -> ColorTable:
    """Colours ``(C, 3)`` of the classes, plus white for the ignore label where the model has one."""
    info = pipe.dataset
    names = tuple(info.class_names)
    labels = list(range(info.num_classes))
    listed = [tuple(int(v) for v in c) for c in colors]
    if info.ignore_index is not None and tuple(IGNORE_COLOR) not in listed:
        listed.append(tuple(IGNORE_COLOR))
        labels.append(info.ignore_index)
        names += ("ignore",)
    return ColorTable(np.asarray(listed, dtype=np.uint8), np.asarray(labels, dtype=np.int64), names, hint=hint)


def mask_labels(stored: np.ndarray, pipe: Segmenter, name: str,
                hint: str = "Paint only with the class colours, or give a class-index PNG") -> torch.Tensor:
    """A mask as the model's classes: an index mask ``(H, W)`` holds them; a colour mask ``(H, W, 3)`` is read in
    the data set's display colours (:func:`colorize`, ``NAME_vis.png``, the app's legend) or, when that fails, in
    the pseudo-mask palette (``NAME_color.png``), each pixel the nearest listed colour within a tolerance, with
    anti-aliased edges accepted (:class:`semflow.data.colormask.ColorTable`).

    Args:
        stored: the file's pixels as :func:`semflow.io.read_mask` returns them.
        name: the file, for messages.

    Returns:
        ``(H, W)``: an index mask's values as stored (not checked here), or int64 labels of a colour mask.

    Raises:
        SemflowInputError: a colour that is none of the model's (naming the colour and where it is).
    """
    if stored.ndim == 2:
        return torch.from_numpy(np.array(stored))  # Pillow's arrays are read-only
    tables = [mask_color_table(pipe, display_colors(pipe), hint)]
    palette_colors = pipe.palette.colors.round().to(torch.uint8).numpy()
    if not np.array_equal(palette_colors, display_colors(pipe)):
        tables.append(mask_color_table(pipe, palette_colors, hint))
    first_error = None
    for table in tables:
        try:
            return torch.from_numpy(table(stored, name))
        except SemflowInputError as err:
            first_error = first_error or err
    raise first_error  # type: ignore[misc]

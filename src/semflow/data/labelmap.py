"""From the values stored in a data set's mask files to training labels, and back.

Data sets store labels in their own ids: COCO-Stuff uses 182 ids of which 171 occur, Cityscapes stores 34
``labelIds`` of which 19 are trained. A :class:`LabelMap` is a lookup table from every stored value to a
training label ``0 .. C-1`` or the ignore index; a stored value the data set does not define is an error
that names the file and the value, never a silent ignore.

The way back (for writing predictions in the data set's own ids, e.g. for an official evaluation server) is
kept in :attr:`DatasetInfo.extra <semflow.data.base.DatasetInfo>` under ``"file_ids"`` (stored value of
each class) and ``"file_ignore"`` (stored value of ignored pixels); see :func:`to_file_ids`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from semflow.data.base import DatasetInfo
from semflow.errors import SemflowInputError

UNDEFINED = -1


@dataclass(frozen=True)
class LabelMap:
    """A lookup table from stored mask values to training labels.

    Args:
        dataset: data set name, for messages.
        table: int64 ``(V,)``; ``table[v]`` is the label of stored value ``v`` (a class ``0 .. C-1`` or the
            ignore index), or ``-1`` where ``v`` is not defined. Stored values ``>= V`` are undefined too.
        expected: a short description of the defined values, for messages (``"0..10, 11 = ignore"``).
    """

    dataset: str
    table: np.ndarray
    expected: str

    @classmethod
    def from_mapping(cls, dataset: str, mapping: Mapping[int, int], expected: str) -> LabelMap:
        """Build from ``{stored value: label}``; every other stored value is undefined."""
        if any(v < 0 for v in mapping):
            raise ValueError(f"{dataset}: stored label values must be >= 0")
        table = np.full(max(mapping) + 1 if mapping else 1, UNDEFINED, dtype=np.int64)
        for value, label in mapping.items():
            table[value] = label
        return cls(dataset=dataset, table=table, expected=expected)

    @classmethod
    def identity(cls, dataset: str, num_classes: int, ignore_index: int | None) -> LabelMap:
        """Stored value ``c`` is class ``c`` for ``c < num_classes``; ``ignore_index`` (if any) is ignored."""
        mapping = {c: c for c in range(num_classes)}
        expected = f"0..{num_classes - 1}"
        if ignore_index is not None:
            mapping[ignore_index] = ignore_index
            expected += f" and {ignore_index} (ignore)"
        return cls.from_mapping(dataset, mapping, expected)

    def __call__(self, stored: np.ndarray, path: str | Path) -> np.ndarray:
        """Map a mask's stored values to labels.

        Args:
            stored: integer array ``(H, W)`` as read from ``path``.
            path: the mask file, named in the error.

        Returns:
            int64 ``(H, W)``: classes ``0 .. C-1`` or the ignore index.

        Raises:
            SemflowInputError: a stored value that the data set does not define (names the file and values).
        """
        if stored.ndim != 2:
            raise SemflowInputError(
                f"{self.dataset}: mask {path} has shape {stored.shape}; expected a single-channel index mask "
                "(an 8-bit PNG of label values, not a colour image)"
            )
        stored = stored.astype(np.int64, copy=False)
        outside = (stored < 0) | (stored >= len(self.table))
        labels = self.table[np.where(outside, 0, stored)]
        bad = outside | (labels == UNDEFINED)
        if bad.any():
            values = np.unique(stored[bad])
            y, x = (int(i[0]) for i in np.nonzero(bad))
            shown = ", ".join(str(int(v)) for v in values[:10]) + (", ..." if len(values) > 10 else "")
            raise SemflowInputError(
                f"{self.dataset}: mask {path} holds label value(s) {shown} (first at x={x}, y={y}; "
                f"{int(bad.sum())} pixels) that the data set does not define; expected {self.expected}"
            )
        return labels


def to_file_ids(labels: torch.Tensor | np.ndarray, info: DatasetInfo) -> np.ndarray:
    """Training labels back to the values the data set stores in its mask files.

    Args:
        labels: integer class map ``(..., H, W)`` in ``0 .. C-1`` or ``info.ignore_index``.
        info: the data set's info; uses ``extra["file_ids"]`` (stored value of each class; identity if absent)
            and ``extra["file_ignore"]`` (stored value of ignored pixels; ``info.ignore_index`` if absent).

    Returns:
        int64 array of the same shape, in the data set's own ids (COCO-Stuff: 0..181 and 255; Cityscapes:
        labelIds 7..33). Cast to ``uint8`` to write an 8-bit PNG when all values fit.
    """
    array = labels.cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    array = array.astype(np.int64, copy=False)
    file_ids = np.asarray(info.extra.get("file_ids", range(info.num_classes)), dtype=np.int64)
    ignore_file = info.extra.get("file_ignore", info.ignore_index)
    valid = (array >= 0) & (array < info.num_classes)
    ignored = ~valid & (array == info.ignore_index) if info.ignore_index is not None else np.zeros_like(valid)
    if not (valid | ignored).all():
        values = np.unique(array[~(valid | ignored)])[:10].tolist()
        raise SemflowInputError(
            f"{info.name}: labels {values} are neither classes 0..{info.num_classes - 1} nor the ignore index"
        )
    out = file_ids[np.where(valid, array, 0)]
    if ignored.any():
        out = np.where(ignored, int(ignore_file), out)
    return out

"""What every segmentation data set provides: samples, class names, ignore index, colours, splits.

A data set yields samples at their original size; transforms (:mod:`semflow.data.transforms`) bring them
to the model's size. Images are ``uint8`` RGB ``(3, H, W)`` in ``[0, 255]``; labels are ``int64 (H, W)``
holding ``0 .. C-1`` or the ignore index.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, TypedDict

import torch
from torch.utils.data import Dataset


class Sample(TypedDict):
    """One pair: ``image`` uint8 ``(3, H, W)``, ``label`` int64 ``(H, W)``, ``name`` (file stem)."""

    image: torch.Tensor
    label: torch.Tensor
    name: str


# The most classes a data set may have: labels are stored in 16-bit PNGs.
MAX_CLASSES = 65535


@dataclass(frozen=True)
class DatasetInfo:
    """What a model must remember of its training data.

    Args:
        name: data set kind (``shapes``, ``camvid``, ...).
        class_names: names of the classes ``0 .. C-1``.
        ignore_index: label excluded from training targets' scoring and drawn white; ``None`` if none.
        colors: display colour per class (RGB ``0..255``), or ``None`` to use the pseudo-mask palette.
        extra: data-set specific metadata to keep (for example a label-id mapping), JSON-serialisable.
    """

    name: str
    class_names: tuple[str, ...]
    ignore_index: int | None = None
    colors: tuple[tuple[int, int, int], ...] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from semflow.errors import SemflowInputError

        names = self.class_names
        if not isinstance(names, tuple) or not names or not all(isinstance(n, str) for n in names):
            raise SemflowInputError(f"data set {self.name!r}: class_names must be a non-empty list of names")
        if len(names) > MAX_CLASSES:
            raise SemflowInputError(f"data set {self.name!r}: {len(names)} classes; expected at most {MAX_CLASSES}")
        if self.ignore_index is not None and (isinstance(self.ignore_index, bool) or not isinstance(
                self.ignore_index, int) or not 0 <= self.ignore_index <= MAX_CLASSES):
            raise SemflowInputError(f"data set {self.name!r}: ignore_index={self.ignore_index!r}; expected a label "
                                    f"0..{MAX_CLASSES} or null")
        if self.colors is not None:
            if len(self.colors) != len(names):
                raise SemflowInputError(f"data set {self.name!r}: {len(self.colors)} colours for {len(names)} classes; "
                                        "expected one [r, g, b] per class (or none)")
            for name, color in zip(names, self.colors):
                if len(color) != 3 or not all(isinstance(v, int) and 0 <= v <= 255 for v in color):
                    raise SemflowInputError(f"data set {self.name!r}: class {name!r} has colour {list(color)}; "
                                            "expected [r, g, b] with whole numbers 0..255")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "class_names": list(self.class_names),
            "ignore_index": self.ignore_index,
            "colors": [list(c) for c in self.colors] if self.colors is not None else None,
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DatasetInfo:
        colors = d.get("colors")
        return cls(
            name=d["name"],
            class_names=tuple(d["class_names"]),
            ignore_index=d.get("ignore_index"),
            colors=tuple(tuple(int(v) for v in c) for c in colors) if colors is not None else None,
            extra=dict(d.get("extra") or {}),
        )


class SegmentationDataset(Dataset, ABC):
    """A split of a segmentation data set; ``ds[i]`` is a :class:`Sample` at the original size."""

    info: DatasetInfo
    split: str

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def __getitem__(self, index: int) -> Sample: ...

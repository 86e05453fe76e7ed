"""Segmentation data sets behind one ``SPEC`` string (``shapes``, ``camvid:PATH``, ...).

Register a new kind in :data:`OPENERS`: a function ``(argument, split, skip_bad) -> SegmentationDataset`` where
``argument`` is what follows ``kind:`` in the spec (a path, or ``key=value,...`` options).

Kinds: ``shapes`` (built in), ``camvid:PATH``, ``cocostuff:PATH``, ``celebamask:PATH``, ``cityscapes:PATH``,
``folder:PATH`` (users' own data). See each module's docstring for its layout, and :mod:`semflow.data.paired`
for what is checked when (bad input is an error naming the file and value, or with ``skip_bad`` a listed skip).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from semflow.data.base import DatasetInfo, Sample, SegmentationDataset
from semflow.data.camvid import open_camvid
from semflow.data.celebamask import open_celebamask
from semflow.data.cityscapes import open_cityscapes
from semflow.data.cocostuff import open_cocostuff
from semflow.data.folder import open_folder
from semflow.data.paired import PairedDataset, write_bad_files
from semflow.data.shapes import ShapesDataset
from semflow.errors import SemflowInputError


def _parse_options(kind: str, argument: str, allowed: dict[str, type]) -> dict[str, object]:
    options: dict[str, object] = {}
    for item in filter(None, argument.split(",")):
        key, sep, value = item.partition("=")
        if not sep or key not in allowed:
            raise SemflowInputError(
                f"{kind}: bad option {item!r}; expected key=value with key in {sorted(allowed)}"
            )
        try:
            options[key] = allowed[key](value)
        except ValueError:
            raise SemflowInputError(f"{kind}: option {key}={value!r} is not a valid {allowed[key].__name__}") from None
    return options


def _open_shapes(argument: str, split: str, skip_bad: bool = False) -> SegmentationDataset:
    options = _parse_options("shapes", argument, {"size": int, "length": int, "seed": int})
    return ShapesDataset(split=split, **options)  # type: ignore[arg-type]


def _on_disk(kind: str, opener: Callable[[Path, str, bool], PairedDataset]) -> Callable[[str, str, bool], SegmentationDataset]:
    def open_path(argument: str, split: str, skip_bad: bool = False) -> SegmentationDataset:
        if not argument:
            raise SemflowInputError(f"data set {kind!r} needs a folder: --data {kind}:PATH")
        return opener(Path(argument).expanduser(), split, skip_bad)

    return open_path


OPENERS: dict[str, Callable[[str, str, bool], SegmentationDataset]] = {
    "shapes": _open_shapes,
    "camvid": _on_disk("camvid", open_camvid),
    "cocostuff": _on_disk("cocostuff", open_cocostuff),
    "celebamask": _on_disk("celebamask", open_celebamask),
    "cityscapes": _on_disk("cityscapes", open_cityscapes),
    "folder": _on_disk("folder", open_folder),
}


def open_dataset(spec: str, split: str = "train", skip_bad: bool = False) -> SegmentationDataset:
    """Open one split of the data set named by ``spec`` (``kind`` or ``kind:argument``).

    Args:
        spec: ``shapes``, ``shapes:size=32``, ``camvid:PATH``, ``cocostuff:PATH``, ``celebamask:PATH``,
            ``cityscapes:PATH`` or ``folder:PATH``.
        split: ``train``, ``val`` or ``test`` (which exist depends on the data set).
        skip_bad: leave bad pairs out instead of raising; they are listed in the returned data set's
            ``bad_files`` as ``(path, reason)`` (always present, empty when nothing was left out).

    Raises:
        SemflowInputError: unknown kind, bad argument, missing split, empty split, or (without ``skip_bad``)
            the first bad file found while opening.
    """
    kind, _, argument = spec.partition(":")
    if kind not in OPENERS:
        raise SemflowInputError(f"unknown data set {spec!r}; expected one of {sorted(OPENERS)} (as KIND or KIND:PATH)")
    dataset = OPENERS[kind](argument, split, skip_bad)
    if not hasattr(dataset, "bad_files"):
        dataset.bad_files = []  # type: ignore[attr-defined]
    return dataset


__all__ = [
    "DatasetInfo", "OPENERS", "PairedDataset", "Sample", "SegmentationDataset", "ShapesDataset", "open_dataset",
    "write_bad_files",
]

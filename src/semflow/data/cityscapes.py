"""Cityscapes (fine annotations) in the official layout: 34 stored labelIds, 19 trainIds, 255 ignored.

Layout (``cityscapes:PATH``), as the official ``leftImg8bit_trainvaltest.zip`` and ``gtFine_trainvaltest.zip``
unpack::

    PATH/leftImg8bit/SPLIT/CITY/CITY_SEQ_FRAME_leftImg8bit.png
    PATH/gtFine/SPLIT/CITY/CITY_SEQ_FRAME_gtFine_labelIds.png
    PATH/metas/SPLIT.txt      optional, one CITY/CITY_SEQ_FRAME a line (the SemFlow authors' layout)

Without ``metas/SPLIT.txt`` the split is every image under ``leftImg8bit/SPLIT``. The stored ``labelIds`` are
mapped to the 19 ``trainIds`` when read, so the ``*_labelTrainIds.png`` files that ``createTrainIdLabelImgs``
makes are not needed. (The official test split's masks hold no labels; use train and val.)

The label table
---------------
The official table is ``cityscapesscripts.helpers.labels`` (``pip install cityscapesscripts``); it is used when
installed. It is not a hard dependency because the package pulls in nine others (pyquaternion, coloredlogs,
requests, matplotlib, the obsolete ``typing`` backport, ...) for a 35-row table that has not changed since 2016.
Without it, :data:`LABEL_TABLE` below is used; ``tests/data/test_cityscapes.py`` checks it row by row against the
official one wherever cityscapesscripts is installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from semflow.data.base import DatasetInfo
from semflow.data.labelmap import LabelMap
from semflow.data.paired import PairedDataset, match_keys, match_listed, open_pairs, read_list_file
from semflow.errors import SemflowInputError

IGNORE_INDEX = 255
SPLITS = ("train", "val", "test")
IMAGE_SUFFIX = "_leftImg8bit.png"
MASK_SUFFIX = "_gtFine_labelIds.png"


class Label(NamedTuple):
    """A row of the Cityscapes label table: stored ``id``, ``train_id`` (255 = ignored) and display colour."""

    name: str
    id: int
    train_id: int
    color: tuple[int, int, int]


# Stored labelIds 0..33 (the official table also lists "license plate" with id -1; it never occurs in masks).
LABEL_TABLE: tuple[Label, ...] = (
    Label("unlabeled", 0, 255, (0, 0, 0)),
    Label("ego vehicle", 1, 255, (0, 0, 0)),
    Label("rectification border", 2, 255, (0, 0, 0)),
    Label("out of roi", 3, 255, (0, 0, 0)),
    Label("static", 4, 255, (0, 0, 0)),
    Label("dynamic", 5, 255, (111, 74, 0)),
    Label("ground", 6, 255, (81, 0, 81)),
    Label("road", 7, 0, (128, 64, 128)),
    Label("sidewalk", 8, 1, (244, 35, 232)),
    Label("parking", 9, 255, (250, 170, 160)),
    Label("rail track", 10, 255, (230, 150, 140)),
    Label("building", 11, 2, (70, 70, 70)),
    Label("wall", 12, 3, (102, 102, 156)),
    Label("fence", 13, 4, (190, 153, 153)),
    Label("guard rail", 14, 255, (180, 165, 180)),
    Label("bridge", 15, 255, (150, 100, 100)),
    Label("tunnel", 16, 255, (150, 120, 90)),
    Label("pole", 17, 5, (153, 153, 153)),
    Label("polegroup", 18, 255, (153, 153, 153)),
    Label("traffic light", 19, 6, (250, 170, 30)),
    Label("traffic sign", 20, 7, (220, 220, 0)),
    Label("vegetation", 21, 8, (107, 142, 35)),
    Label("terrain", 22, 9, (152, 251, 152)),
    Label("sky", 23, 10, (70, 130, 180)),
    Label("person", 24, 11, (220, 20, 60)),
    Label("rider", 25, 12, (255, 0, 0)),
    Label("car", 26, 13, (0, 0, 142)),
    Label("truck", 27, 14, (0, 0, 70)),
    Label("bus", 28, 15, (0, 60, 100)),
    Label("caravan", 29, 255, (0, 0, 90)),
    Label("trailer", 30, 255, (0, 0, 110)),
    Label("train", 31, 16, (0, 80, 100)),
    Label("motorcycle", 32, 17, (0, 0, 230)),
    Label("bicycle", 33, 18, (119, 11, 32)),
)


def official_label_table() -> tuple[Label, ...] | None:
    """The table from ``cityscapesscripts`` (rows with ``id >= 0``), or ``None`` where it is not installed."""
    try:
        from cityscapesscripts.helpers.labels import labels
    except ImportError:
        return None
    return tuple(Label(l.name, l.id, l.trainId, tuple(l.color)) for l in labels if l.id >= 0)  # type: ignore[misc]


def label_table() -> tuple[Label, ...]:
    """The official table where installed, else :data:`LABEL_TABLE`."""
    return official_label_table() or LABEL_TABLE


def make_info(table: tuple[Label, ...]) -> DatasetInfo:
    """Classes, colours and the way back to labelIds, from a label table."""
    trained = sorted((l for l in table if l.train_id != IGNORE_INDEX), key=lambda l: l.train_id)
    if [l.train_id for l in trained] != list(range(len(trained))):
        raise ValueError("cityscapes: the label table's trainIds are not 0..C-1")
    return DatasetInfo(
        name="cityscapes",
        class_names=tuple(l.name for l in trained),
        ignore_index=IGNORE_INDEX,
        colors=tuple(l.color for l in trained),
        # file_ids: the labelId of each trainId, to write predictions for the official evaluation scripts.
        extra={"splits": list(SPLITS), "file_ids": [l.id for l in trained], "file_ignore": 0},
    )


def make_labels(table: tuple[Label, ...]) -> LabelMap:
    """labelIds to trainIds; ids outside the table are undefined."""
    return LabelMap.from_mapping(
        "cityscapes", {l.id: l.train_id for l in table},
        expected=f"the Cityscapes labelIds 0..{max(l.id for l in table)} (a *_gtFine_labelIds.png file)",
    )


def open_cityscapes(root: str | Path, split: str = "train", skip_bad: bool = False) -> PairedDataset:
    """Open one split of an official-layout Cityscapes folder (see the module docstring)."""
    root = Path(root)
    if split not in SPLITS:
        raise SemflowInputError(f"cityscapes: unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    image_dir, mask_dir = root / "leftImg8bit" / split, root / "gtFine" / split
    if not image_dir.is_dir():
        raise SemflowInputError(f"cityscapes: {image_dir} is not a folder; expected the official leftImg8bit/ and gtFine/ layout")
    table = label_table()
    info, labels = make_info(table), make_labels(table)
    list_file = root / "metas" / f"{split}.txt"
    if list_file.is_file():
        pairs, problems = match_listed(
            "cityscapes", read_list_file("cityscapes", list_file),
            image_of=lambda key: image_dir / f"{key}{IMAGE_SUFFIX}",
            mask_of=lambda key: mask_dir / f"{key}{MASK_SUFFIX}",
            list_file=list_file,
            name_of=lambda key: key.rsplit("/", 1)[-1],
        )
        return open_pairs(info, split, pairs, labels, problems, skip_bad, source=str(list_file))
    images = {_key(p, image_dir, IMAGE_SUFFIX): p for p in image_dir.glob(f"*/*{IMAGE_SUFFIX}")}
    masks = {_key(p, mask_dir, MASK_SUFFIX): p for p in mask_dir.glob(f"*/*{MASK_SUFFIX}")} if mask_dir.is_dir() else {}
    pairs, problems = match_keys("cityscapes", images, masks, image_dir, mask_dir, name_of=lambda k: k.rsplit("/", 1)[-1])
    return open_pairs(info, split, pairs, labels, problems, skip_bad, source=str(image_dir))


def list_frames(root: str | Path, split: str) -> list[str]:
    """The ``CITY/CITY_SEQ_FRAME`` keys of the images of a split, sorted (what ``metas/SPLIT.txt`` holds)."""
    image_dir = Path(root) / "leftImg8bit" / split
    return sorted(_key(p, image_dir, IMAGE_SUFFIX) for p in image_dir.glob(f"*/*{IMAGE_SUFFIX}"))


def _key(path: Path, folder: Path, suffix: str) -> str:
    """``folder/CITY/X{suffix}`` -> ``CITY/X``."""
    return path.relative_to(folder).as_posix()[: -len(suffix)]

"""CamVid in the SegNet layout: 11 street-scene classes, label 11 (Unlabelled) ignored.

Layout (``camvid:PATH``)::

    PATH/train/NAME.png   PATH/trainannot/NAME.png   PATH/train.txt
    PATH/val/...          PATH/valannot/...          PATH/val.txt
    PATH/test/...         PATH/testannot/...         PATH/test.txt

``SPLIT.txt`` holds one pair a line, ``IMAGE MASK``; the SegNet tutorial writes absolute paths such as
``/SegNet/CamVid/train/X.png``, so only the last two path components (``train/X.png``) are used. Without a
``SPLIT.txt``, the pairs are the files of ``SPLIT/`` and ``SPLITannot/`` matched by name. Masks are 8-bit index
PNGs holding ``0..10`` and ``11`` (ignore).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from semflow.data.base import DatasetInfo
from semflow.data.labelmap import LabelMap
from semflow.data.paired import BadFile, PairedDataset, match_keys, match_listed, open_pairs, read_list_file
from semflow.errors import SemflowInputError

CLASS_NAMES = (
    "Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car", "Pedestrian", "Bicyclist",
)
# The conventional display colours (RGB) of the SegNet CamVid version.
COLORS = (
    (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222), (128, 128, 0),
    (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192),
)
IGNORE_INDEX = 11  # "Unlabelled"
SPLITS = ("train", "val", "test")

INFO = DatasetInfo(
    name="camvid",
    class_names=CLASS_NAMES,
    ignore_index=IGNORE_INDEX,
    colors=COLORS,
    extra={"splits": list(SPLITS), "ignore_name": "Unlabelled"},
)
LABELS = LabelMap.identity("camvid", len(CLASS_NAMES), IGNORE_INDEX)


def open_camvid(root: str | Path, split: str = "train", skip_bad: bool = False) -> PairedDataset:
    """Open one split of a SegNet-layout CamVid folder (see the module docstring)."""
    root = Path(root)
    if not root.is_dir():
        raise SemflowInputError(f"camvid: {root} is not a folder; expected the SegNet CamVid layout (train/, trainannot/, train.txt, ...)")
    if split not in SPLITS:
        raise SemflowInputError(f"camvid: unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    list_file = root / f"{split}.txt"
    if list_file.is_file():
        problems: list[BadFile] = []
        keys: list[str] = []
        for line in read_list_file("camvid", list_file):
            fields = line.split()
            if len(fields) != 2:
                problems.append((str(list_file), f"camvid: {list_file} line {line!r} should be 'IMAGE MASK'"))
                continue
            keys.append(" ".join(_last_two(f) for f in fields))
        pairs, missing = match_listed(
            "camvid", keys,
            image_of=lambda key: root / key.split(" ")[0],
            mask_of=lambda key: root / key.split(" ")[1],
            list_file=list_file,
            name_of=lambda key: PurePosixPath(key.split(" ")[0]).stem,
        )
        return open_pairs(INFO, split, pairs, LABELS, problems + missing, skip_bad, source=str(list_file))
    image_dir, mask_dir = root / split, root / f"{split}annot"
    if not image_dir.is_dir() or not mask_dir.is_dir():
        raise SemflowInputError(
            f"camvid: split {split!r} of {root} has neither {list_file.name} nor the folders {split}/ and {split}annot/"
        )
    images = {p.stem: p for p in image_dir.iterdir() if p.is_file() and not p.name.startswith(".")}
    masks = {p.stem: p for p in mask_dir.iterdir() if p.is_file() and not p.name.startswith(".")}
    pairs, problems = match_keys("camvid", images, masks, image_dir, mask_dir)
    return open_pairs(INFO, split, pairs, LABELS, problems, skip_bad, source=str(image_dir))


def _last_two(path: str) -> str:
    """``/SegNet/CamVid/train/X.png`` -> ``train/X.png`` (the list files of the SegNet tutorial are absolute)."""
    parts = PurePosixPath(path.replace("\\", "/")).parts
    return "/".join(parts[-2:])

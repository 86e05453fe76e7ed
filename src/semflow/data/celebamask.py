"""CelebAMask-HQ in the SemFlow authors' layout: 512px faces, 19 classes, no ignore label.

Layout (``celebamask:PATH``)::

    PATH/CelebA-512-img/N.jpg            512x512 RGB
    PATH/CelebAMask-HQ-mergemask/N.png   512x512 8-bit index PNG, classes 0..18
    PATH/metas/train.txt, val.txt        one image number N a line (test.txt too if present)

``semflow prepare celebamask-hq RAW OUT`` makes this layout from the official download
(:func:`semflow.data.prepare.prepare_celebamask_hq`).
"""

from __future__ import annotations

from pathlib import Path

from semflow.data.base import DatasetInfo
from semflow.data.labelmap import LabelMap
from semflow.data.paired import PairedDataset, match_listed, open_pairs, read_list_file
from semflow.errors import SemflowInputError

CLASS_NAMES = (
    "background", "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear",
    "mouth", "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth",
)
# The part masks merged in this order, later parts painting over earlier ones: class c is PARTS[c - 1].
PARTS = CLASS_NAMES[1:]
# The display colours used by the CelebAMask-HQ release for its colour masks (RGB).
COLORS = (
    (0, 0, 0), (204, 0, 0), (76, 153, 0), (204, 204, 0), (51, 51, 255), (204, 0, 204), (0, 255, 255),
    (255, 204, 204), (102, 51, 0), (255, 0, 0), (102, 204, 0), (255, 255, 0), (0, 0, 153), (0, 0, 204),
    (255, 51, 153), (0, 204, 204), (0, 51, 0), (255, 153, 51), (0, 204, 0),
)
IMAGE_DIR = "CelebA-512-img"
MASK_DIR = "CelebAMask-HQ-mergemask"
SPLITS = ("train", "val", "test")

INFO = DatasetInfo(
    name="celebamask",
    class_names=CLASS_NAMES,
    ignore_index=None,
    colors=COLORS,
    extra={"splits": list(SPLITS)},
)
LABELS = LabelMap.identity("celebamask", len(CLASS_NAMES), None)


def open_celebamask(root: str | Path, split: str = "train", skip_bad: bool = False) -> PairedDataset:
    """Open one split of a CelebAMask-HQ folder in the authors' layout (see the module docstring)."""
    root = Path(root)
    if split not in SPLITS:
        raise SemflowInputError(f"celebamask: unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if not root.is_dir():
        raise SemflowInputError(f"celebamask: {root} is not a folder; expected {IMAGE_DIR}/, {MASK_DIR}/, metas/")
    list_file = root / "metas" / f"{split}.txt"
    if not list_file.is_file():
        raise SemflowInputError(
            f"celebamask: {list_file} does not exist; make the layout with 'semflow prepare celebamask-hq RAW {root}'"
        )
    keys = read_list_file("celebamask", list_file)
    pairs, problems = match_listed(
        "celebamask", keys,
        image_of=lambda key: root / IMAGE_DIR / f"{key}.jpg",
        mask_of=lambda key: root / MASK_DIR / f"{key}.png",
        list_file=list_file,
    )
    return open_pairs(INFO, split, pairs, LABELS, problems, skip_bad, source=str(list_file))

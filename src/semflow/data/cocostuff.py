"""COCO-Stuff 164k in the SemFlow authors' layout: 182 stored ids, 171 training classes, 255 ignored.

Layout (``cocostuff:PATH``)::

    PATH/train2017/ID.jpg    PATH/annotations/train2017/ID.png    PATH/metas/train.txt
    PATH/val2017/ID.jpg      PATH/annotations/val2017/ID.png      PATH/metas/val.txt

``metas/SPLIT.txt`` holds one image id a line, without extension (``000000000285``); ``semflow prepare cocostuff
PATH`` writes them from the folders. Masks are the official ``stuffthingmaps_trainval2017`` PNGs: 8-bit, holding
the COCO-Stuff label ids ``0..181`` (the COCO category id minus one; things ``0..90``, stuff ``91..181``) and 255
for unlabeled. Eleven thing ids were never used by COCO (:data:`UNUSED_IDS`), so 171 ids occur; they become the
training classes ``0..170`` in id order (the usual 171-class protocol). A mask holding an unused id is an error.

The way back, for writing predictions as COCO-Stuff ids: ``DatasetInfo.extra["file_ids"][c]`` is the stored id of
class ``c`` and ``extra["file_ignore"]`` is 255 (see :func:`semflow.data.labelmap.to_file_ids`).
"""

from __future__ import annotations

from pathlib import Path

from semflow.data.base import DatasetInfo
from semflow.data.labelmap import LabelMap
from semflow.data.paired import PairedDataset, match_listed, open_pairs, read_list_file
from semflow.errors import SemflowInputError

# Names of the 182 COCO-Stuff ids (index = stored id); None where COCO defined a category id but never used it.
ID_NAMES: tuple[str | None, ...] = (
    # things, ids 0..90 (COCO category ids 1..91)
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", None, "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep",
    "cow", "elephant", "bear", "zebra", "giraffe", None, "backpack", "umbrella", None, None,
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite", "baseball bat",
    "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle", None, "wine glass", "cup", "fork",
    "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog",
    "pizza", "donut", "cake", "chair", "couch", "potted plant", "bed", None, "dining table", None,
    None, "toilet", None, "tv", "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave",
    "oven", "toaster", "sink", "refrigerator", None, "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush", None,
    # stuff, ids 91..181 (COCO-Stuff category ids 92..182)
    "banner", "blanket", "branch", "bridge", "building-other", "bush", "cabinet", "cage", "cardboard",
    "carpet", "ceiling-other", "ceiling-tile", "cloth", "clothes", "clouds", "counter", "cupboard", "curtain",
    "desk-stuff", "dirt", "door-stuff", "fence", "floor-marble", "floor-other", "floor-stone", "floor-tile",
    "floor-wood", "flower", "fog", "food-other", "fruit", "furniture-other", "grass", "gravel", "ground-other",
    "hill", "house", "leaves", "light", "mat", "metal", "mirror-stuff", "moss", "mountain", "mud", "napkin",
    "net", "paper", "pavement", "pillow", "plant-other", "plastic", "platform", "playingfield", "railing",
    "railroad", "river", "road", "rock", "roof", "rug", "salad", "sand", "sea", "shelf", "sky-other",
    "skyscraper", "snow", "solid-other", "stairs", "stone", "straw", "structural-other", "table", "tent",
    "textile-other", "towel", "tree", "vegetable", "wall-brick", "wall-concrete", "wall-other", "wall-panel",
    "wall-stone", "wall-tile", "wall-wood", "water-other", "waterdrops", "window-blind", "window-other", "wood",
)
NUM_IDS = 182
UNUSED_IDS = tuple(i for i, name in enumerate(ID_NAMES) if name is None)  # 11, 25, 28, 29, 44, 65, 67, 68, 70, 82, 90
USED_IDS = tuple(i for i, name in enumerate(ID_NAMES) if name is not None)  # stored id of class c = USED_IDS[c]
CLASS_NAMES = tuple(ID_NAMES[i] for i in USED_IDS)  # type: ignore[misc]
IGNORE_INDEX = 255  # stored and training value of unlabeled pixels
SPLITS = ("train", "val")

INFO = DatasetInfo(
    name="cocostuff",
    class_names=CLASS_NAMES,  # type: ignore[arg-type]
    ignore_index=IGNORE_INDEX,
    colors=None,  # COCO-Stuff has no official colour per class: the pseudo-mask palette is used
    extra={"splits": list(SPLITS), "file_ids": list(USED_IDS), "file_ignore": IGNORE_INDEX},
)
LABELS = LabelMap.from_mapping(
    "cocostuff",
    {**{stored: c for c, stored in enumerate(USED_IDS)}, IGNORE_INDEX: IGNORE_INDEX},
    expected="the 171 used COCO-Stuff ids 0..181 (not the unused " + ", ".join(map(str, UNUSED_IDS)) + ") and 255",
)


def open_cocostuff(root: str | Path, split: str = "train", skip_bad: bool = False) -> PairedDataset:
    """Open one split of a COCO-Stuff folder in the authors' layout (see the module docstring)."""
    root = Path(root)
    if split not in SPLITS:
        raise SemflowInputError(f"cocostuff: unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if not root.is_dir():
        raise SemflowInputError(f"cocostuff: {root} is not a folder; expected train2017/, val2017/, annotations/, metas/")
    list_file = root / "metas" / f"{split}.txt"
    if not list_file.is_file():
        raise SemflowInputError(f"cocostuff: {list_file} does not exist; write it with 'semflow prepare cocostuff {root}'")
    keys = read_list_file("cocostuff", list_file)
    pairs, problems = match_listed(
        "cocostuff", keys,
        image_of=lambda key: root / f"{split}2017" / f"{key}.jpg",
        mask_of=lambda key: root / "annotations" / f"{split}2017" / f"{key}.png",
        list_file=list_file,
    )
    return open_pairs(INFO, split, pairs, LABELS, problems, skip_bad, source=str(list_file))

"""Write a data set as a user brings one: ``folder:`` layout, JPEG photos, colour masks and ``classes.json``.

The ``train`` defaults study of docs/quality.md ("Defaults for your own folder") trains on CamVid brought so, the
way a user with their own photos and colour-coded masks would (4:3 photos, colour PNG masks, unlabelled pixels
black)::

    python bench/camvid_folder.py --data camvid:../shared/data/camvid --out runs/camvid-folder
    semflow train --data folder:runs/camvid-folder --out runs/mine

Every split of the source becomes ``images/SPLIT/STEM.jpg`` (quality 95) and ``masks/SPLIT/STEM.png``; each class
is painted in the source's display colour, the ignore label in ``--ignore-color``. Refuses to write into a folder
that exists.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="data set SPEC with display colours, e.g. camvid:../shared/data/camvid")
    p.add_argument("--out", required=True, type=Path, help="new folder to write")
    p.add_argument("--splits", nargs="+", default=["train", "val", "test"])
    p.add_argument("--ignore-color", type=int, nargs=3, default=[0, 0, 0], metavar=("R", "G", "B"))
    args = p.parse_args()

    from semflow.data import open_dataset
    from semflow.errors import SemflowInputError
    from semflow.io import write_image, write_json

    if args.out.exists():
        print(f"error: --out {args.out} exists; expected a new folder", file=sys.stderr)
        return 2
    try:
        sets = {split: open_dataset(args.data, split) for split in args.splits}
    except SemflowInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    info = next(iter(sets.values())).info
    if info.colors is None:
        print(f"error: --data {args.data} has no display colours to paint masks with", file=sys.stderr)
        return 2
    colors = [list(c) for c in info.colors]
    if args.ignore_color in colors:
        print(f"error: --ignore-color {args.ignore_color} is a class colour; expected another", file=sys.stderr)
        return 2
    lut = np.zeros((256, 3), np.uint8)
    lut[:] = args.ignore_color
    lut[: len(colors)] = colors
    # Written beside --out and renamed at the end: the folder is whole or absent.
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=args.out.parent, prefix=f".{args.out.name}."))
    tmp.chmod(0o755)  # mkdtemp makes it 0700
    try:
        for split, dataset in sets.items():
            for i in range(len(dataset)):
                sample = dataset[i]
                write_image(sample["image"].permute(1, 2, 0).numpy(), tmp / "images" / split / f"{sample['name']}.jpg")
                write_image(lut[sample["label"].numpy()], tmp / "masks" / split / f"{sample['name']}.png")
            print(f"{split}: {len(dataset)} pairs")
        write_json({"classes": [{"name": n, "color": c} for n, c in zip(info.class_names, colors)],
                    "ignore_index": 255, "ignore_color": list(args.ignore_color), "color_tolerance": 16},
                   tmp / "classes.json")
        tmp.rename(args.out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``semflow encode-mask``: render a class-index mask as its RGB pseudo-mask."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from semflow.io import read_label, write_image


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("encode-mask", help="render a class-index mask as a pseudo-mask", description=__doc__)
    p.add_argument("mask", type=Path, help="class-index PNG")
    p.add_argument("--out", required=True, type=Path, help="output PNG")
    p.add_argument("--k", type=int, default=6, help="palette base (paper: 6)")
    p.add_argument("--s", type=int, default=50, help="palette step in pixel levels (paper: 50)")
    p.add_argument("--num-classes", type=int, help="number of classes (default: k^3, every colour the palette has)")
    p.add_argument("--ignore-index", type=int, default=255, help="label drawn white (default 255)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from semflow.errors import SemflowInputError
    from semflow.outputs import check_output_file
    from semflow.pseudomask.palette import Palette

    check_output_file(args.out)
    if args.out.exists() and args.mask.exists() and os.path.samefile(args.out, args.mask):
        raise SemflowInputError(f"--out {args.out} is the input mask {args.mask}; writing it would replace the "
                                "class indices with colours (choose another file name)")

    palette = Palette(args.k**3 if args.num_classes is None else args.num_classes, k=args.k, s=args.s, ignore_index=args.ignore_index)
    label = read_label(args.mask)
    try:
        rgb = palette.encode(label)
    except SemflowInputError as err:
        raise SemflowInputError(f"{args.mask}: {err}") from None
    write_image(np.ascontiguousarray(rgb.round().byte().permute(1, 2, 0).numpy()), args.out)
    print(f"wrote {args.out}")
    return 0

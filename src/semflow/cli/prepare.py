"""``semflow prepare``: turn official downloads into the layouts ``--data`` reads.

    semflow prepare celebamask-hq RAW OUT     official CelebAMask-HQ -> 512px images, merged masks, metas/
    semflow prepare cocostuff PATH            write PATH/metas/{train,val}.txt from the folders
    semflow prepare cityscapes PATH           write PATH/metas/{train,val,test}.txt (optional: the folders suffice)

The work is done by :mod:`semflow.data.prepare`; this module only parses arguments and shows progress.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from semflow.data.paired import write_bad_files
from semflow.data.prepare import PrepareReport, prepare_celebamask_hq, write_metas


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``prepare`` and its three targets to the ``semflow`` command line."""
    parser = subparsers.add_parser(
        "prepare",
        help="make the data set layouts from official downloads",
        description="Make the layouts that --data reads from the official downloads of the paper's data sets.",
    )
    targets = parser.add_subparsers(dest="target", metavar="TARGET", required=True)

    celeb = targets.add_parser(
        "celebamask-hq",
        help="official CelebAMask-HQ -> CelebA-512-img/, CelebAMask-HQ-mergemask/, metas/",
        description="From the official CelebAMask-HQ download (CelebA-HQ-img/, CelebAMask-HQ-mask-anno/, "
        "CelebA-HQ-to-CelebA-mapping.txt) make 512px images, merged 19-class masks and metas/ with the official "
        "train/val/test split (CelebA partition). Rerunning continues an interrupted run.",
    )
    celeb.add_argument("raw", type=Path, metavar="RAW", help="the unpacked official download (or its parent folder)")
    celeb.add_argument("out", type=Path, metavar="OUT", help="output folder, then usable as --data celebamask:OUT")
    celeb.add_argument("--size", type=int, default=512, help="output image side in pixels (default: 512, as the authors)")
    celeb.add_argument("--quality", type=int, default=95, help="JPEG quality of the output images, 1..100 (default: 95)")
    celeb.add_argument("--workers", type=int, default=None, help="processes to use (default: all CPU cores)")
    _add_skip_bad(celeb)
    celeb.set_defaults(func=run)

    for kind, layout in (
        ("cocostuff", "train2017/ID.jpg, val2017/ID.jpg, annotations/{train2017,val2017}/ID.png"),
        ("cityscapes", "leftImg8bit/SPLIT/CITY/*_leftImg8bit.png, gtFine/SPLIT/CITY/*_gtFine_labelIds.png"),
    ):
        sub = targets.add_parser(
            kind,
            help=f"write {kind} metas/SPLIT.txt lists",
            description=f"Check that every image of a {kind} folder ({layout}) has its mask and write metas/SPLIT.txt.",
        )
        sub.add_argument("path", type=Path, metavar="PATH", help=f"the {kind} folder; metas/ is written inside it")
        sub.add_argument("--check", action="store_true", help="also decode every mask and check its labels and size")
        sub.add_argument("--workers", type=int, default=2, help="threads for --check (default: 2)")
        _add_skip_bad(sub)
        sub.set_defaults(func=run)


def _add_skip_bad(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--skip-bad", action="store_true",
        help="leave out bad files and list them in bad_files.tsv instead of stopping at the first",
    )


def run(args: argparse.Namespace) -> int:
    """Run ``semflow prepare TARGET ...``; bad input raises SemflowInputError (exit code 2 in main)."""
    with tqdm(unit="file", desc=f"prepare {args.target}", disable=None) as bar:
        if args.target == "celebamask-hq":
            report = prepare_celebamask_hq(
                args.raw, args.out, size=args.size, quality=args.quality, workers=args.workers,
                skip_bad=args.skip_bad, progress=bar.update,
            )
        else:
            report = write_metas(args.target, args.path, check=args.check, skip_bad=args.skip_bad,
                                 workers=args.workers, progress=bar.update)
    _summarise(report)
    return 0


def _summarise(report: PrepareReport) -> None:
    counts = ", ".join(f"{split} {n}" for split, n in report.counts.items())
    print(f"wrote {report.out}: {counts}")
    if report.bad_files:
        listing = report.out / "bad_files.tsv"
        write_bad_files(report.bad_files, listing)
        print(f"warning: left out {len(report.bad_files)} bad file(s); listed in {listing}", file=sys.stderr)

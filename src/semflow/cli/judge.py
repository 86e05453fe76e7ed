"""``semflow bench judge``: train (or reuse) a data set's judge of syntheses and print its real-image mIoU.

The judge (:mod:`semflow.evaluation.judge`) is an ESPNet trained once per data set on the real training images
and kept in a cache folder (``--judges``, default ``judges/`` in semflow's cache folder, ``$SEMFLOW_CACHE`` or ``~/.cache/semflow``) under a
hash of its configuration and of the training split's content; ``bench paper`` reuses it. With ``--weights``
(a local ESPNet release file, e.g. ../shared/weights/espnet-camvid/espnet_p_2_q_8_camvid.pth) it starts from
those weights, otherwise from scratch.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from semflow.cli.common import positive_int


def add_judge_args(p: argparse.ArgumentParser) -> None:
    """The judge's options, shared by ``bench judge`` and ``bench paper``."""
    p.add_argument("--judge", type=Path, help="a judge folder to use as it is (instead of the cache's)")
    p.add_argument("--judges", type=Path, help="cache folder of judges (default: judges/ in $SEMFLOW_CACHE, "
                                               "else ~/.cache/semflow)")
    p.add_argument("--judge-weights", help="local ESPNet release weights the judge starts from (default: from "
                                           "scratch); with bench paper also scored as they are, an extra column")
    p.add_argument("--judge-steps", type=positive_int, default=3000, help="judge training steps (default 3000)")
    p.add_argument("--judge-batch-size", type=positive_int, default=8, help="judge batch size (default 8)")
    p.add_argument("--judge-lr", type=float, default=5e-4, help="judge peak learning rate, Adam (default 5e-4)")
    p.add_argument("--judge-size", type=positive_int, nargs=2, metavar=("H", "W"),
                   help="judge resolution, multiples of 8 (default: the training images' median size)")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("judge", help="train (or reuse) a data set's judge of syntheses", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="data set SPEC (shapes, camvid:PATH, ...)")
    add_judge_args(p)
    p.add_argument("--split", help="split to score it on (default test, or the data set's last)")
    p.add_argument("--threads", type=positive_int, help="torch threads (default torch's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def judge_options(args: argparse.Namespace):
    """The parsed judge flags as :class:`semflow.experiments.judge.JudgeOptions`."""
    from semflow.experiments.judge import JudgeOptions

    return JudgeOptions(judge=args.judge, judges=args.judges, judge_weights=args.judge_weights,
                        judge_steps=args.judge_steps, judge_batch_size=args.judge_batch_size, judge_lr=args.judge_lr,
                        judge_size=args.judge_size, no_progress=args.no_progress)


def run(args: argparse.Namespace) -> int:
    import torch

    from semflow.data import open_dataset
    from semflow.evaluation.judge import with_scores
    from semflow.evaluation.segmentation import default_split
    from semflow.experiments.judge import judge_from_options

    if args.threads:
        torch.set_num_threads(args.threads)
    began = time.perf_counter()
    train = open_dataset(args.data, "train")
    split = args.split or default_split(train.info)
    test = open_dataset(args.data, split)
    judge, folder = judge_from_options(judge_options(args), train)
    scores = with_scores(judge, folder, test, split)
    print(f"semflow bench judge: {judge.name} in {folder}")
    training = judge.record.get("training")
    if training:
        print(f"  trained {training['steps']} steps in {training['seconds'] / 60:.1f} min ({training['threads']} "
              f"thread(s)), final loss {training['final_loss']:.4f}")
    print(f"  real {split} images: mIoU {100 * scores.miou:.1f} %, pixel accuracy {100 * scores.pixel_accuracy:.1f} %"
          f" ({len(test)} images; {time.perf_counter() - began:.0f} s)")
    print("  " + json.dumps({n: None if v is None else round(100 * v, 1)
                             for n, v in zip(train.info.class_names, scores.per_class_iou)}))
    return 0

"""``semflow bench``: reproducible comparisons. ``semflow bench paper``: the analogs of the paper's Tables 1 and 2
(the experiment is :mod:`semflow.experiments.paper`); ``semflow bench judge``: the data set's judge of syntheses."""

from __future__ import annotations

import argparse
from pathlib import Path

from semflow.cli import judge
from semflow.cli.common import add_device_arg, parse_steps, pick_device, positive_int, seed_int
from semflow.cli.judge import add_judge_args
from semflow.config import PALETTES
from semflow.experiments.paper import MODELS

PAPER_DOC = """Train (or reuse) SemFlow (the recommended and the paper presets), DSM, a discriminative model and the
synthesis rivals on one data set with one backbone and budget, and write the analogs of the paper's Table 1
(segmentation, and synthesis scored by an independent judge: semflow bench judge) and Table 2 (mIoU against
sampling steps): OUT/paper.md, OUT/paper.json, OUT/paper.png, OUT/synthesis.png. OUT/models/ holds the models; a
model whose train_config.json matches is reused, an interrupted one resumes from its last checkpoint."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("bench", help="reproduce the paper's comparisons on a data set", description=__doc__)
    benches = p.add_subparsers(dest="bench", metavar="BENCH", required=True)
    register_paper(benches)
    judge.register(benches)


def register_paper(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("paper", help="Tables 1 and 2 of the paper on a data set (trains four models)",
                              description=PAPER_DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="data set SPEC (shapes, camvid:PATH, ...)")
    p.add_argument("--out", required=True, type=Path, help="output folder (models, paper.md, paper.json, paper.png)")
    p.add_argument("--size", type=positive_int, nargs=2, metavar=("H", "W"), default=[48, 64],
                   help="model size in pixels (default 48 64)")
    p.add_argument("--train-steps", type=positive_int, default=1000, help="optimiser steps per model (default 1000)")
    p.add_argument("--batch-size", type=positive_int, default=8, help="training batch size (default 8)")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate, all models (default 1e-3)")
    p.add_argument("--codec", help="codec kind (default: the kind the --codec-path weights hold, else pixel)")
    p.add_argument("--codec-path", help="local weights of a latent codec (its kind is read off the files)")
    p.add_argument("--palette", choices=list(PALETTES), default="spread",
                   help="pseudo-mask palette of every model, both SemFlow presets included (default spread; the "
                        "paper's is authors with k=6, s=50)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="any config value for all four runs, e.g. --set model.network_args.layers_per_block=2")
    p.add_argument("--steps", default="1,2,5,10,25,50", help="Table 2's step counts (default 1,2,5,10,25,50)")
    p.add_argument("--table1-steps", type=positive_int, default=25,
                   help="steps for Table 1's segmentation and synthesis (default 25; DSM uses the most of --steps)")
    p.add_argument("--split", default=None, help="split to score (default test, or the data set's last)")
    p.add_argument("--test-images", type=int, default=0,
                   help="score this many evenly spaced images of the split (default 0: all)")
    p.add_argument("--samples", type=positive_int, default=2, help="images synthesized per mask (default 2)")
    p.add_argument("--fid-weights", help="Inception weights for FID (optional extra semflow[metrics])")
    p.add_argument("--lpips-weights", help="AlexNet backbone weights for LPIPS (optional extra semflow[metrics])")
    p.add_argument("--no-fid", action="store_true", help="skip FID/LPIPS even where their weights are found")
    add_judge_args(p)
    p.add_argument("--pretrained-judge-size", type=positive_int, nargs=2, metavar=("H", "W"),
                   help="resolution the --judge-weights release segments at in its extra column (default: the "
                        "judge's; the CamVid release was trained at 360 480)")
    p.add_argument("--seed", type=seed_int, default=0, help="random seed (training and sampling)")
    p.add_argument("--batch-size-eval", type=positive_int, default=16, help="images per forward pass when scoring")
    p.add_argument("--num-workers", type=int, default=0, help="data loader worker processes")
    p.add_argument("--retrain", action="store_true", help="train again even where OUT/models/MODEL matches")
    p.add_argument("--train-only", nargs="+", choices=list(MODELS), metavar="MODEL",
                   help=f"train (or reuse) only these models ({', '.join(MODELS)}) and stop: a later run with the "
                        "same options reuses them")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_device_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from semflow.experiments.paper import PaperOptions, run_paper

    options = {k: v for k, v in vars(args).items() if k not in ("func", "command", "bench")}
    options.update(steps=parse_steps(args.steps), device=pick_device(args.device))
    results = run_paper(PaperOptions(**options))
    if results is None:  # --train-only
        return 0
    print((args.out / "paper.md").read_text())
    print(f"semflow bench paper: done in {results['total_seconds'] / 60:.1f} min; wrote {args.out / 'paper.md'}, "
          f"{args.out / 'paper.json'}, {args.out / 'paper.png'} and {args.out / 'synthesis.png'}")
    return 0

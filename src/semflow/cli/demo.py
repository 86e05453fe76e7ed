"""``semflow demo``: the whole idea on a laptop CPU in minutes.

Trains on the built-in shapes, scores segmentation at 1, 2, 5, 10 and 25 steps of the model's solver (the
preset's: Euler for paper, snap for recommended), synthesizes several images for a few masks, and writes an HTML
report with the model beside it (the experiment is :mod:`semflow.experiments.demo`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from semflow.cli.common import positive_int, seed_int
from semflow.config import DEFAULT_PRESET, PRESETS


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="train and run both directions on built-in data (CPU, minutes)",
                              description=__doc__)
    p.add_argument("--out", type=Path, default=Path("semflow-demo"), help="report folder (default semflow-demo)")
    p.add_argument("--minutes", type=float, default=5.0, help="total time budget in minutes (default 5)")
    p.add_argument("--steps", type=positive_int, help="training steps (default: as many as the budget allows)")
    p.add_argument("--size", type=positive_int, default=32, help="image side in pixels (default 32)")
    p.add_argument("--test-images", type=positive_int, default=256, help="test images scored (default 256)")
    p.add_argument("--seed", type=seed_int, default=0, help="random seed")
    p.add_argument("--preset", default=DEFAULT_PRESET, metavar="|".join(PRESETS),
                   help=f"training recipe (default {DEFAULT_PRESET}; paper: the authors' recipe exactly)")
    p.add_argument("--rival", action="store_true",
                   help="also train the noise-flow rival (mask-conditioned flow from noise) for as many steps, and "
                        "print its synthesis scores beside SemFlow's (about 0.8x SemFlow's training time more: it does "
                        "not fit the default budget)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from semflow.experiments.demo import DemoOptions, run_demo

    metrics = run_demo(DemoOptions(out=args.out, minutes=args.minutes, steps=args.steps, size=args.size,
                                   test_images=args.test_images, seed=args.seed, preset=args.preset, rival=args.rival,
                                   no_progress=args.no_progress))
    if metrics is None:
        return 130
    print(f"mIoU by {metrics['solver']} steps: " + ", ".join(f"{n}: {v:.3f}" for n, v in metrics["miou"].items())
          + f" (default: {metrics['default_steps']})")
    syn = metrics["synthesis"]
    print(f"synthesis at {syn['steps']} steps (eta {syn['eta']:g}): diversity (pixel L1 between samples of a mask) "
          f"{syn['diversity_l1']:.4f}, cycle mIoU {syn['cycle_miou']:.3f}, high-frequency energy "
          f"{syn['hf_energy']:.4f} against the real images' {syn['hf_energy_real']:.4f} (ratio {syn['hf_ratio']:.2f})")
    if "rival" in metrics:
        rival = metrics["rival"]
        print(f"noise-flow rival ({rival['train']['steps']} steps): diversity {rival['diversity_l1']:.4f}, mIoU of its "
              f"samples segmented by the SemFlow model {rival['sis_miou']:.3f}, high-frequency energy ratio "
              f"{rival['hf_ratio']:.2f}")
    else:
        print("noise-flow rival: not trained here (about 0.8x SemFlow's training time more than the demo's budget); "
              "`semflow demo --rival` trains it for the same steps, and `semflow bench paper` compares both at equal "
              "budget on CamVid")
    print(f"semflow demo: done in {metrics['total_seconds'] / 60:.1f} min; report: {(args.out / 'index.html').resolve()}")
    return 0

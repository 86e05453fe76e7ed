"""``semflow demo``: the whole idea on a laptop CPU in minutes.

Trains on the built-in shapes, scores segmentation at 1, 2, 5, 10 and 25 steps of the model's solver (the
preset's: Euler for paper, snap for recommended), synthesizes several images for a few masks, and writes an HTML
report with the model beside it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from semflow.cli.common import positive_int, seed_int
from semflow.config import DEFAULT_PRESET, PRESETS, demo_config  # noqa: F401  (demo_config: its old home)

DEMO_STEPS = [1, 2, 5, 10, 25]
# The step count `segment` and `synthesize` use unless told otherwise: the one the demo reports as default.
DEFAULT_STEPS = 25
# Synthesis scored on this many test masks (at most --test-images), this many samples each (diversity, cycle mIoU).
SYNTHESIS_MASKS, SYNTHESIS_SAMPLES = 32, 4
# Share of the time budget kept for evaluation, synthesis and the report (measured: ~55 s at 32x32).
RESERVED_SECONDS = 75.0


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


def calibrate_steps(config, budget_seconds: float) -> int:
    """Training steps that fit ``budget_seconds``, from the timing of a few steps of the same model."""
    from semflow.data import open_dataset
    from semflow.models.base import Segmenter

    dataset = open_dataset(config.train.data, "train")
    pipe = Segmenter.from_config(config.model, dataset.info)
    opt = torch.optim.AdamW(pipe.trainable.parameters(), lr=1e-4)
    batch = [dataset[i] for i in range(config.train.batch_size)]
    images = torch.stack([b["image"] for b in batch]).float() / 255
    labels = torch.stack([b["label"] for b in batch])

    def median_seconds(runs: int, self_aligned: bool) -> float:
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            pipe.training_loss(images, labels, objective=config.train.objective, self_aligned=self_aligned).backward()
            opt.step()
            opt.zero_grad()
            times.append(time.perf_counter() - start)
        warm = sorted(times[1:])  # the first call of each kind pays one-off costs
        return warm[len(warm) // 2]

    per_step = median_seconds(5, False)
    fraction = config.train.objective.self_align_fraction
    if fraction:  # the last part of training also runs the model's own solves, without gradients
        per_step = (1 - fraction) * per_step + fraction * median_seconds(5, True)
    per_step *= 1.1  # data loading and logging
    return max(20, int(budget_seconds / per_step))


def segmented_by(segmenter, model, masks, seed: int) -> float:
    """mIoU of ``model``'s samples of every mask (the seeds evaluate_synthesis gives them) segmented by ``segmenter``
    at the demo's default steps, against the masks: for SemFlow's own samples, that is its cycle mIoU."""
    from semflow.evaluation.metrics import ConfusionMatrix
    from semflow.seeding import make_generator

    info = masks.info
    confusion = ConfusionMatrix(info.num_classes, info.ignore_index)
    for start in range(0, len(masks), 8):
        labels = torch.stack([masks[i]["label"] for i in range(start, min(start + 8, len(masks)))])
        images = model.synthesize(labels, steps=DEFAULT_STEPS, samples=SYNTHESIS_SAMPLES, seed=None,
                                  generator=[make_generator(seed, start + i) for i in range(len(labels))]).images
        predicted = segmenter.segment(images.flatten(0, 1), steps=DEFAULT_STEPS).labels
        for pred, label in zip(predicted, labels.repeat_interleave(SYNTHESIS_SAMPLES, dim=0)):
            confusion.update(pred.cpu(), label)
    return confusion.scores().miou


def train_rival(args: argparse.Namespace, out: Path, steps: int, judge, masks) -> dict:
    """Train the noise-flow rival on the demo's data, network and ``steps``, and score its synthesis as SemFlow's is
    scored, its samples segmented by the demo's SemFlow model (for SemFlow itself, that is the cycle)."""
    from semflow.evaluation.synthesis import evaluate_synthesis
    from semflow.training import train

    config = demo_config(args.size, args.seed, preset_name=args.preset, method="noise-flow")
    config.train.steps = steps
    print(f"semflow demo: training the noise-flow rival for the same {steps} steps ...")
    rival, result = train(config, out / "rival", progress_bar=not args.no_progress)
    scores = evaluate_synthesis(rival, masks, steps=DEFAULT_STEPS, samples=SYNTHESIS_SAMPLES, seed=args.seed)
    return {"method": "noise-flow", "sis_miou": segmented_by(judge, rival, masks, args.seed),
            "diversity_l1": scores.diversity_l1,
            "hf_energy": scores.hf_energy, "hf_energy_real": scores.hf_energy_real, "hf_ratio": scores.hf_ratio,
            "train": {"steps": result.steps, "seconds": result.seconds, "final_loss": result.final_loss}}


def run(args: argparse.Namespace) -> int:
    from semflow.config import preset
    from semflow.errors import SemflowInputError
    from semflow.outputs import FolderLock, check_output_folder

    preset(args.preset)  # an unknown name: one line before any work
    if args.minutes <= 0:
        raise SemflowInputError(f"--minutes {args.minutes}; expected a positive number of minutes")
    out: Path = check_output_folder(args.out)
    with FolderLock(out):  # one demo writes a folder at a time (its model folder has its own lock: train's)
        return _demo(args, out)


def _demo(args: argparse.Namespace, out: Path) -> int:
    from tqdm.auto import tqdm

    from semflow.cli.report import write_report
    from semflow.training import train
    from semflow.config import save_json
    from semflow.data import open_dataset
    from semflow.evaluation.segmentation import evaluate_segmentation
    from semflow.evaluation.synthesis import evaluate_synthesis
    from semflow.errors import SemflowInputError

    began = time.perf_counter()
    config = demo_config(args.size, args.seed, preset_name=args.preset)
    budget = args.minutes * 60 - RESERVED_SECONDS
    if budget < 10:
        raise SemflowInputError(f"--minutes {args.minutes} leaves no time to train; expected at least 1.5")
    config.train.steps = args.steps or calibrate_steps(config, budget - (time.perf_counter() - began))
    config.train.max_minutes = (budget - (time.perf_counter() - began)) / 60
    print(f"semflow demo: training {config.train.steps} steps on built-in shapes ({args.size}x{args.size}) ...")
    pipe, result = train(config, out / "model", progress_bar=not args.no_progress)
    if result.interrupted:
        print(f"semflow demo: interrupted after {result.steps} training steps; the model is in {out / 'model'}")
        return 130

    test = open_dataset(f"shapes:size={args.size},length={args.test_images}", "test")
    solver = pipe.default_solver  # the preset's: Euler for paper, snap for recommended
    print(f"semflow demo: scoring {len(test)} test images at {DEMO_STEPS} steps of the {solver} solver ...")
    evaluation = evaluate_segmentation(
        pipe, test, DEMO_STEPS, solver=solver, batch_size=64,
        progress=(lambda it: it) if args.no_progress else (lambda it: tqdm(it, desc="evaluate", unit="batch")),
    )
    masks = open_dataset(f"shapes:size={args.size},length={min(SYNTHESIS_MASKS, args.test_images)}", "test")
    print(f"semflow demo: synthesizing {SYNTHESIS_SAMPLES} images for each of {len(masks)} test masks ...")
    synthesis = evaluate_synthesis(pipe, masks, steps=DEFAULT_STEPS, samples=SYNTHESIS_SAMPLES, seed=args.seed)
    metrics = {"data": "shapes", "split": "test", "solver": solver, "preset": args.preset,
               "default_steps": DEFAULT_STEPS, **evaluation.to_json(),
               "synthesis": {"steps": DEFAULT_STEPS, "masks": synthesis.num_masks, "samples": synthesis.samples,
                             "diversity_l1": synthesis.diversity_l1, "cycle_miou": synthesis.cycle_miou,
                             "hf_energy": synthesis.hf_energy, "hf_energy_real": synthesis.hf_energy_real,
                             "hf_ratio": synthesis.hf_ratio},
               "train": {"steps": result.steps, "seconds": result.seconds, "final_loss": result.final_loss}}
    if args.rival:
        metrics["rival"] = train_rival(args, out, result.steps, pipe, masks)
    write_report(out, pipe, test, metrics, seed=args.seed)
    metrics["total_seconds"] = time.perf_counter() - began
    save_json(metrics, out / "metrics.json")
    miou = metrics["miou"]
    print(f"mIoU by {solver} steps: " + ", ".join(f"{n}: {v:.3f}" for n, v in miou.items())
          + f" (default: {DEFAULT_STEPS})")
    print(f"synthesis at {DEFAULT_STEPS} steps: diversity (pixel L1 between samples of a mask) "
          f"{synthesis.diversity_l1:.4f}, cycle mIoU {synthesis.cycle_miou:.3f}, high-frequency energy "
          f"{synthesis.hf_energy:.4f} against the real images' {synthesis.hf_energy_real:.4f} (ratio "
          f"{synthesis.hf_ratio:.2f})")
    if args.rival:
        rival = metrics["rival"]
        print(f"noise-flow rival ({rival['train']['steps']} steps, {rival['train']['seconds']:.0f} s against SemFlow's "
              f"{result.seconds:.0f} s): diversity {rival['diversity_l1']:.4f} (SemFlow {synthesis.diversity_l1:.4f}), "
              f"mIoU of its samples segmented by the SemFlow model {rival['sis_miou']:.3f} (SemFlow's own samples: cycle "
              f"{synthesis.cycle_miou:.3f}), high-frequency energy ratio {rival['hf_ratio']:.2f} "
              f"(SemFlow {synthesis.hf_ratio:.2f})")
    else:
        print("noise-flow rival: not trained here (it would take about 0.8x SemFlow's training time more than the "
              "demo's budget); `semflow demo --rival` trains it for the same steps, and the README's CamVid synthesis "
              "table has both at equal budget (`semflow bench paper`)")
    print(f"semflow demo: done in {metrics['total_seconds'] / 60:.1f} min; report: {(out / 'index.html').resolve()}")
    return 0

"""``semflow demo``'s experiment: the whole idea on a laptop CPU in minutes.

Trains on the built-in shapes within a time budget, scores segmentation at 1, 2, 5, 10 and 25 steps of the model's
solver (the preset's: Euler for paper, snap for recommended), synthesizes several images for a few masks, and
writes an HTML report (:mod:`semflow.experiments.demo_report`), ``metrics.json`` and the model beside it.
"""

from __future__ import annotations

import time

import torch
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from tqdm.auto import tqdm

from semflow.config import DEFAULT_PRESET, demo_config, preset, save_json
from semflow.data import open_dataset
from semflow.errors import SemflowInputError
from semflow.evaluation.segmentation import evaluate_segmentation
from semflow.evaluation.synthesis import evaluate_synthesis
from semflow.experiments.demo_report import write_report
from semflow.outputs import FolderLock, check_output_folder
from semflow.training import train
from semflow.training.calibrate import calibrate_steps

DEMO_STEPS = [1, 2, 5, 10, 25]
# The step count `segment` and `synthesize` use unless told otherwise: the one the demo reports as default.
DEFAULT_STEPS = 25
# Synthesis scored on this many test masks (at most test_images), this many samples each (diversity, cycle mIoU).
SYNTHESIS_MASKS, SYNTHESIS_SAMPLES = 32, 4
# Seconds of the time budget kept for evaluation, synthesis and the report (what they take: the README's make demo).
RESERVED_SECONDS = 75.0


@dataclass
class DemoOptions:
    """``out``: the report folder; ``minutes``: the whole budget; ``steps``: training steps (``None``: as many as
    the budget allows); ``size``: the image side in pixels; ``test_images`` scored; ``preset``: the recipe."""

    out: Path = Path("semflow-demo")
    minutes: float = 5.0
    steps: int | None = None
    size: int = 32
    test_images: int = 256
    seed: int = 0
    preset: str = DEFAULT_PRESET
    rival: bool = False
    no_progress: bool = False


def run_demo(options: DemoOptions, say: Callable[[str], None] = print) -> dict[str, Any] | None:
    """Train, score, synthesize and write the report; returns the metrics (what ``metrics.json`` holds), or
    ``None`` when training was interrupted (the model folder then holds what was trained)."""
    preset(options.preset)  # an unknown name: one line before any work
    if options.minutes <= 0:
        raise SemflowInputError(f"--minutes {options.minutes}; expected a positive number of minutes")
    out = check_output_folder(options.out)
    with FolderLock(out):  # one demo writes a folder at a time (its model folder has its own lock: train's)
        return _demo(options, out, say)


def _demo(options: DemoOptions, out: Path, say: Callable[[str], None]) -> dict[str, Any] | None:
    began = time.perf_counter()
    size = options.size
    config = demo_config(size, options.seed, preset_name=options.preset)
    budget = options.minutes * 60 - RESERVED_SECONDS
    if budget < 10:
        raise SemflowInputError(f"--minutes {options.minutes} leaves no time to train; expected at least 1.5")
    config.train.steps = options.steps or calibrate_steps(config, budget - (time.perf_counter() - began))
    config.train.max_minutes = (budget - (time.perf_counter() - began)) / 60
    say(f"semflow demo: training {config.train.steps} steps on built-in shapes ({size}x{size}) ...")
    pipe, result = train(config, out / "model", progress_bar=not options.no_progress)
    if result.interrupted:
        say(f"semflow demo: interrupted after {result.steps} training steps; the model is in {out / 'model'}")
        return None

    test = open_dataset(f"shapes:size={size},length={options.test_images}", "test")
    solver = pipe.default_solver  # the preset's: Euler for paper, snap for recommended
    say(f"semflow demo: scoring {len(test)} test images at {DEMO_STEPS} steps of the {solver} solver ...")
    evaluation = evaluate_segmentation(
        pipe, test, DEMO_STEPS, solver=solver, batch_size=64,
        progress=(lambda it: it) if options.no_progress else (lambda it: tqdm(it, desc="evaluate", unit="batch")),
    )
    masks = open_dataset(f"shapes:size={size},length={min(SYNTHESIS_MASKS, options.test_images)}", "test")
    say(f"semflow demo: synthesizing {SYNTHESIS_SAMPLES} images for each of {len(masks)} test masks ...")
    synthesis = evaluate_synthesis(pipe, masks, steps=DEFAULT_STEPS, samples=SYNTHESIS_SAMPLES, seed=options.seed)
    metrics = {"data": "shapes", "split": "test", "solver": solver, "preset": options.preset,
               "default_steps": DEFAULT_STEPS, **evaluation.to_json(),
               "synthesis": {"steps": DEFAULT_STEPS, "masks": synthesis.num_masks, "samples": synthesis.samples,
                             "eta": pipe.config.synthesis_eta,
                             "diversity_l1": synthesis.diversity_l1, "cycle_miou": synthesis.cycle_miou,
                             "hf_energy": synthesis.hf_energy, "hf_energy_real": synthesis.hf_energy_real,
                             "hf_ratio": synthesis.hf_ratio},
               "train": {"steps": result.steps, "seconds": result.seconds, "final_loss": result.final_loss}}
    if options.rival:
        metrics["rival"] = train_rival(options, out, result.steps, pipe, masks, say)
    write_report(out, pipe, test, metrics, seed=options.seed)
    metrics["total_seconds"] = time.perf_counter() - began
    save_json(metrics, out / "metrics.json")
    return metrics


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


def train_rival(args: DemoOptions, out: Path, steps: int, judge, masks, say: Callable[[str], None] = print) -> dict:
    """Train the noise-flow rival on the demo's data, network and ``steps``, and score its synthesis as SemFlow's is
    scored, its samples segmented by the demo's SemFlow model (for SemFlow itself, that is the cycle)."""
    config = demo_config(args.size, args.seed, preset_name=args.preset, method="noise-flow")
    config.train.steps = steps
    say(f"semflow demo: training the noise-flow rival for the same {steps} steps ...")
    rival, result = train(config, out / "rival", progress_bar=not args.no_progress)
    scores = evaluate_synthesis(rival, masks, steps=DEFAULT_STEPS, samples=SYNTHESIS_SAMPLES, seed=args.seed)
    return {"method": "noise-flow", "sis_miou": segmented_by(judge, rival, masks, args.seed),
            "diversity_l1": scores.diversity_l1,
            "hf_energy": scores.hf_energy, "hf_energy_real": scores.hf_energy_real, "hf_ratio": scores.hf_ratio,
            "train": {"steps": result.steps, "seconds": result.seconds, "final_loss": result.final_loss}}

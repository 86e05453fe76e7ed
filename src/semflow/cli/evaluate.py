"""``semflow evaluate``: mIoU, pixel accuracy and per-class IoU over a data split at several step counts.

Any model (semflow, dsm, discriminative) is scored the same way. Under a launcher (``accelerate launch``,
``torchrun``) each process scores its share of the split and process 0 sums the confusion matrices.

With ``--synthesis``, a model that synthesizes is scored instead on the split's masks (``--samples`` images each,
at the largest of ``--steps``) by the data set's judge (``semflow bench judge``; trained once and cached if absent):
SIS-mIoU, FD, KID, both diversities and, for a model that also segments, cycle mIoU. One process.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path

from tqdm.auto import tqdm

from semflow.cli.common import (
    add_device_arg, add_solver_arg, load_pipeline, non_negative_int, parse_steps, positive_int,
    require_segmenter,
)
from semflow.cli.judge import add_judge_args
from semflow.cli.speed import add_speed_args, apply_speed_args
from semflow.config import save_json


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("evaluate", help="score segmentation on a data split", description=__doc__)
    p.add_argument("--model", required=True, type=Path, help="model folder")
    p.add_argument("--data", required=True, help="data set SPEC (shapes, camvid:PATH, ...)")
    p.add_argument("--split", help="split to score (default: test, or the data set's last split, e.g. val)")
    p.add_argument("--skip-bad", action="store_true",
                   help="leave out bad pairs (counted, listed in bad_files.tsv beside --out) instead of stopping")
    p.add_argument("--steps", default="1,2,5,10,25", help="comma-separated step counts (default 1,2,5,10,25)")
    add_solver_arg(p, segmenters=True)
    p.add_argument("--test-images", type=non_negative_int, default=0,
                   help="score this many evenly spaced images of the split, as bench paper does (default 0: all)")
    p.add_argument("--batch-size", type=positive_int, default=16, help="images per forward pass")
    p.add_argument("--num-workers", type=non_negative_int, default=0, help="data loader worker processes")
    p.add_argument("--out", type=Path, help="write the metrics JSON here")
    p.add_argument("--synthesis", action="store_true",
                   help="score synthesis from the split's masks by the data set's judge instead of segmentation")
    p.add_argument("--samples", type=positive_int, default=2, help="with --synthesis: images per mask (default 2)")
    p.add_argument("--seed", type=int, default=0, help="with --synthesis: mask i gets the perturbations of (seed, i)")
    add_judge_args(p)
    p.add_argument("--no-progress", action="store_true", help="with --synthesis: no progress bars (judge training)")
    add_device_arg(p)
    add_speed_args(p)
    p.set_defaults(func=run)


def format_table(metrics: dict, solver: str | None) -> str:
    """A Markdown table of mIoU and pixel accuracy per step count."""
    lines = [f"| steps ({solver}) | mIoU | pixel acc. | s/image |", "|---:|---:|---:|---:|"]
    for n in metrics["miou"]:
        lines.append(f"| {n} | {metrics['miou'][n]:.4f} | {metrics['pixel_accuracy'][n]:.4f} | "
                     f"{metrics['seconds_per_image'][n]:.4f} |")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from semflow.cli.parallel import inference_device, process_state
    from semflow.outputs import FolderLock, check_output_file

    if args.out is not None:
        check_output_file(args.out)  # before the evaluation, not after it

    state = process_state()
    pipe = load_pipeline(args.model, inference_device(state, args.device))
    if not args.synthesis:  # a synthesis-only model is scored by --synthesis
        require_segmenter(pipe, args.model)  # before the lock makes --out's folder
    # One writer of the file at a time, held until the metrics are written (a folder it made goes on failure).
    with FolderLock.for_file(args.out) if args.out is not None and state.is_main_process else contextlib.nullcontext():
        return _evaluate(args, state, pipe)


def _evaluate(args: argparse.Namespace, state, pipe) -> int:
    from semflow.cli.parallel import my_share
    from semflow.data import open_dataset
    from semflow.data.paired import BAD_FILES, report_bad_files
    from semflow.evaluation.segmentation import (
        EvaluationResult, check_compatible, check_steps, default_split, evaluate_segmentation,
    )
    from semflow.evaluation.subset import evenly_spaced_indices

    steps = parse_steps(args.steps)
    solver = pipe.check_solver(args.solver) if not args.synthesis else None  # before any work starts
    steps = check_steps(pipe, steps)
    split = args.split or default_split(pipe.dataset)
    dataset = open_dataset(args.data, split, skip_bad=args.skip_bad)
    check_compatible(pipe, dataset)
    report_bad_files(dataset, (args.out.parent if args.out else Path(".")) / BAD_FILES, state.is_main_process)
    pool = evenly_spaced_indices(len(dataset), args.test_images) or list(range(len(dataset)))
    if args.synthesis:
        return run_synthesis(args, pipe, dataset, split, pool, max(steps), state.num_processes)
    with apply_speed_args(pipe, args):
        result = evaluate_segmentation(pipe, dataset, steps, solver=solver, batch_size=args.batch_size,
                                       num_workers=args.num_workers,
                                       indices=[pool[i] for i in my_share(state, len(pool))],
                                       progress=lambda it: tqdm(it, desc="evaluate", unit="batch",
                                                                disable=not state.is_main_process))
    if state.num_processes > 1:  # sum the confusion matrices, never per-process means
        from accelerate.utils import gather_object

        result = EvaluationResult.merge(gather_object([result]))
        if not state.is_main_process:
            return 0
    metrics = {"model": str(args.model), "method": pipe.method, "data": args.data, "split": split,
               "solver": solver, "processes": state.num_processes, **result.to_json()}
    print(format_table(metrics, solver))
    if args.out:
        save_json(metrics, args.out)
        print(f"wrote {args.out}")
    else:
        print(json.dumps({"miou": metrics["miou"]}))
    return 0


def run_synthesis(args: argparse.Namespace, pipe, dataset, split: str, pool: list[int], steps: int,
                  processes: int) -> int:
    """``--synthesis``: the model's samples from the masks ``pool`` of ``dataset`` scored by the judges."""
    from semflow.cli.judge import judge_options
    from semflow.errors import SemflowInputError
    from semflow.experiments.judge import judged_synthesis

    if processes > 1:
        raise SemflowInputError("--synthesis scores in one process; run it without a launcher")
    if not pipe.can_synthesize:
        raise SemflowInputError(f"{args.model} holds a {pipe.method} model, which does not synthesize; --synthesis "
                                "scores models that do")
    result, judge, folder = judged_synthesis(pipe, dataset, args.data, judge_options(args), steps, args.samples,
                                             args.seed, args.batch_size, indices=pool)
    metrics = {"model": str(args.model), "method": pipe.method, "data": args.data, "split": split,
               "judge_folder": str(folder), **result.to_json()}
    print(f"judge: {judge.name} ({folder})")
    print("| judge | SIS-mIoU | FD | KID | KID std | diversity (judge features) |\n|---|---:|---:|---:|---:|---:|")
    for role, scores in result.judged.items():
        cells = [scores.sis_miou, scores.fd, scores.kid, scores.kid_std, scores.diversity]
        print(f"| {role} | " + " | ".join("—" if v is None else f"{v:.4f}" for v in cells) + " |")
    cycle = "—" if result.cycle_miou is None else f"{result.cycle_miou:.4f}"
    l1 = "—" if result.diversity_l1 is None else f"{result.diversity_l1:.4f}"
    print(f"cycle mIoU {cycle}, diversity (pixel L1) {l1}, {result.seconds_per_image:.3f} s per sample "
          f"({result.num_masks} masks x {result.samples} samples at {steps} steps)")
    if args.out:
        save_json(metrics, args.out)
        print(f"wrote {args.out}")
    return 0

"""``semflow evaluate``: mIoU, pixel accuracy and per-class IoU over a data split at several step counts.

Any model (semflow, dsm, discriminative) is scored the same way. Under a launcher (``accelerate launch``,
``torchrun``) each process scores its share of the split and process 0 sums the confusion matrices.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path

from tqdm.auto import tqdm

from semflow.cli.common import (
    add_device_arg, add_solver_arg, load_pipeline, non_negative_int, parse_steps, positive_int, require_segmenter,
)
from semflow.cli.speed import add_speed_args, apply_speed_args
from semflow.config import save_json
from semflow.data.base import DatasetInfo


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
    add_device_arg(p)
    add_speed_args(p)
    p.set_defaults(func=run)


def default_split(info: DatasetInfo) -> str:
    """``test`` where the model's data set has one, else its last split (COCO-Stuff: ``val``)."""
    splits = info.extra.get("splits")
    return "test" if not splits or "test" in splits else list(splits)[-1]


def format_table(metrics: dict, solver: str | None) -> str:
    """A Markdown table of mIoU and pixel accuracy per step count."""
    lines = [f"| steps ({solver}) | mIoU | pixel acc. | s/image |", "|---:|---:|---:|---:|"]
    for n in metrics["miou"]:
        lines.append(f"| {n} | {metrics['miou'][n]:.4f} | {metrics['pixel_accuracy'][n]:.4f} | "
                     f"{metrics['seconds_per_image'][n]:.4f} |")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from semflow.cli.parallel import process_state
    from semflow.outputs import FolderLock, check_output_file

    if args.out is not None:
        check_output_file(args.out)  # before the evaluation, not after it
    state = process_state()
    # One writer of the file at a time, held until the metrics are written (a folder it made goes on failure).
    with FolderLock.for_file(args.out) if args.out is not None and state.is_main_process else contextlib.nullcontext():
        return _evaluate(args, state)


def _evaluate(args: argparse.Namespace, state) -> int:
    from semflow.cli.parallel import inference_device, my_share
    from semflow.data import open_dataset
    from semflow.data.paired import BAD_FILES, report_bad_files
    from semflow.evaluation.segmentation import EvaluationResult, check_compatible, check_steps, evaluate_segmentation
    from semflow.evaluation.subset import evenly_spaced_indices

    steps = parse_steps(args.steps)
    pipe = load_pipeline(args.model, inference_device(state, args.device))
    require_segmenter(pipe, args.model)
    solver = pipe.check_solver(args.solver)  # before any work starts
    steps = check_steps(pipe, steps)
    split = args.split or default_split(pipe.dataset)
    dataset = open_dataset(args.data, split, skip_bad=args.skip_bad)
    check_compatible(pipe, dataset)
    report_bad_files(dataset, (args.out.parent if args.out else Path(".")) / BAD_FILES, state.is_main_process)
    pool = evenly_spaced_indices(len(dataset), args.test_images) or list(range(len(dataset)))
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

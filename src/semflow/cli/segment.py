"""``semflow segment``: image files or folders to class-index PNGs and pseudo-mask PNGs.

For each input ``NAME``: ``NAME.png``, the class map at the input's size in the data set's own label ids
(COCO-Stuff's 0..181 with 255, Cityscapes' labelIds, otherwise the class index); ``NAME_color.png``, the
decoded pseudo-mask; and, where the data set defines display colours, ``NAME_vis.png`` in those colours.

Under ``accelerate launch`` or ``torchrun`` each process segments a contiguous share of the inputs (sorted as
listed) and writes its own outputs; the files are the same as one process writes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from semflow.cli.common import (
    add_device_arg, add_solver_arg, load_pipeline, positive_int, progress_bar, require_segmenter, solver_steps,
)
from semflow.cli.speed import add_speed_args, speed_of


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("segment", help="segment images (image -> mask, t = 0 to 1)", description=__doc__)
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="image files or folders of images")
    p.add_argument("--model", required=True, type=Path, help="model folder")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--steps", type=solver_steps, default=25, help="Euler/Heun steps N (default 25)")
    add_solver_arg(p, segmenters=True)
    p.add_argument("--batch-size", type=positive_int, default=16, help="images per forward pass")
    add_device_arg(p)
    add_speed_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from semflow.cli.parallel import LaunchedProcesses, inference_device, process_state
    from semflow.files import segment_files
    from semflow.io import list_images
    from semflow.outputs import check_output_folder

    check_output_folder(args.out)
    processes = LaunchedProcesses(process_state())  # under a launcher each process segments its share
    paths = list_images(args.inputs)
    pipe = load_pipeline(args.model, inference_device(processes.state, args.device))
    require_segmenter(pipe, args.model)
    done = segment_files(pipe, paths, args.out, steps=args.steps, solver=args.solver, batch_size=args.batch_size,
                         processes=processes, prepare=speed_of(args),
                         progress=progress_bar("segment", processes.is_main_process))
    if processes.is_main_process:
        split = f" in {processes.num_processes} processes" if processes.num_processes > 1 else ""
        print(f"segmented {done.inputs} image(s) with {args.steps} {done.solver} step(s){split}; wrote {args.out}")
    return 0

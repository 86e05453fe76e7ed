"""``semflow segment``: image files or folders to class-index PNGs and pseudo-mask PNGs.

For each input ``NAME``: ``NAME.png``, the class map at the input's size in the data set's own label ids
(COCO-Stuff's 0..181 with 255, Cityscapes' labelIds, otherwise the class index); ``NAME_color.png``, the
decoded pseudo-mask; and, where the data set defines display colours, ``NAME_vis.png`` in those colours.

Under ``accelerate launch`` or ``torchrun`` each process segments a contiguous share of the inputs (sorted as
listed) and writes its own outputs; the files are the same as one process writes.
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from semflow.cli.common import (
    add_device_arg, add_solver_arg, load_pipeline, positive_int, require_segmenter, solver_steps,
)
from semflow.cli.speed import add_speed_args, apply_speed_args
from semflow.errors import SemflowInputError, SemflowOutputError
from semflow.io import list_images, read_image, write_image
from semflow.outputs import FolderLock, check_output_folder, plan_outputs


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


def output_names(has_colors: bool) -> Callable[[Path], list[str]]:
    """The files ``segment`` writes for one input: ``NAME.png``, ``NAME_color.png`` (and ``NAME_vis.png``)."""
    suffixes = ["", "_color", "_vis"] if has_colors else ["", "_color"]
    return lambda path: [f"{path.stem}{suffix}.png" for suffix in suffixes]


def run(args: argparse.Namespace) -> int:
    from semflow.cli.parallel import inference_device, my_share, process_state, stop_if_any_failed
    from semflow.data.labelmap import to_file_ids
    from semflow.data.transforms import resize_image, resize_label
    from semflow.rendering import colorize, pseudo_mask_rgb, save_label_png

    check_output_folder(args.out)
    state = process_state()  # under a launcher each process segments its share of the inputs
    paths = list_images(args.inputs)
    pipe = load_pipeline(args.model, inference_device(state, args.device))
    require_segmenter(pipe, args.model)
    args.solver = pipe.check_solver(args.solver)  # before any output is written
    # Every output path, checked for collisions and for replacing an input before any work.
    outputs = plan_outputs(paths, output_names(pipe.dataset.colors is not None), args.out)
    share = my_share(state, len(paths))
    mine = [paths[i] for i in share]
    images, error = [], None
    try:
        images = [read_image(p) for p in mine]  # every input is checked before anything is written
    except SemflowInputError as err:
        error = err
    stop_if_any_failed(state, error)
    precision = apply_speed_args(pipe, args)
    device = next(pipe.parameters()).device
    done, current = 0, args.out
    with FolderLock(args.out) if state.is_main_process else contextlib.nullcontext():
        try:
            for start in tqdm(range(0, len(mine), args.batch_size), desc="segment", unit="batch",
                              disable=not state.is_main_process):
                chunk = images[start : start + args.batch_size]
                x = torch.stack([resize_image(im.float() / 255.0, pipe.size) for im in chunk]).to(device)
                with precision:
                    out = pipe.segment(x, steps=args.steps, solver=args.solver)
                for i, image in enumerate(chunk):
                    size = tuple(image.shape[-2:])
                    index_path, color_path, *vis_path = outputs[share[start + i]]
                    labels = resize_label(out.labels[i].cpu(), size)
                    current = index_path
                    save_label_png(to_file_ids(labels, pipe.dataset), index_path)
                    if vis_path:
                        current = vis_path[0]
                        write_image(colorize(labels, pipe), vis_path[0])
                    current = color_path
                    write_image(pseudo_mask_rgb(out.pseudo_mask[i], size), color_path)
                    done += 1
        except OSError as err:
            for path in outputs[share[done]] if done < len(share) else []:
                path.unlink(missing_ok=True)  # the image being written: all of its outputs or none
            raise SemflowOutputError(
                f"cannot write {current} ({err.strerror or err}); the outputs of {done} of "
                f"{len(mine)} image(s) were written, the others were not"
            ) from None
    state.wait_for_everyone()
    if state.is_main_process:
        split = f" in {state.num_processes} processes" if state.num_processes > 1 else ""
        print(f"segmented {len(paths)} image(s) with {args.steps} {args.solver} step(s){split}; wrote {args.out}")
    return 0

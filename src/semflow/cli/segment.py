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

import numpy as np
import torch
from tqdm.auto import tqdm

from semflow.cli.common import add_device_arg, add_solver_arg, load_pipeline, positive_int
from semflow.cli.speed import add_speed_args, apply_speed_args
from semflow.errors import SemflowInputError
from semflow.io import list_images, read_image, write_image


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("segment", help="segment images (image -> mask, t = 0 to 1)", description=__doc__)
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="image files or folders of images")
    p.add_argument("--model", required=True, type=Path, help="model folder")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--steps", type=positive_int, default=25, help="Euler/Heun steps N (default 25)")
    add_solver_arg(p, segmenters=True)
    p.add_argument("--batch-size", type=positive_int, default=16, help="images per forward pass")
    add_device_arg(p)
    add_speed_args(p)
    p.set_defaults(func=run)


def unique_stems(paths: list[Path]) -> None:
    """Raise if two inputs would write the same output names."""
    seen: dict[str, Path] = {}
    for path in paths:
        if path.stem in seen:
            raise SemflowInputError(f"{path} and {seen[path.stem]} have the same name {path.stem!r}; outputs would collide")
        seen[path.stem] = path


def label_png(labels: np.ndarray, path: Path) -> None:
    """Class indices as an 8-bit PNG (16-bit when there are more than 256 labels)."""
    dtype = np.uint8 if labels.max(initial=0) < 256 else np.uint16
    write_image(labels.astype(dtype), path)


def run(args: argparse.Namespace) -> int:
    from semflow.cli.parallel import inference_device, my_share, process_state, stop_if_any_failed
    from semflow.cli.report import colorize
    from semflow.data.labelmap import to_file_ids
    from semflow.data.transforms import resize_image, resize_label

    state = process_state()  # under a launcher each process segments its share of the inputs
    paths = list_images(args.inputs)
    unique_stems(paths)
    mine = [paths[i] for i in my_share(state, len(paths))]
    images, error = [], None
    try:
        images = [read_image(p) for p in mine]  # every input is checked before anything is written
    except SemflowInputError as err:
        error = err
    stop_if_any_failed(state, error)
    pipe = load_pipeline(args.model, inference_device(state, args.device))
    args.solver = pipe.check_solver(args.solver)  # before any output is written
    precision = apply_speed_args(pipe, args)
    device = next(pipe.parameters()).device
    args.out.mkdir(parents=True, exist_ok=True)
    for start in tqdm(range(0, len(mine), args.batch_size), desc="segment", unit="batch",
                      disable=not state.is_main_process):
        chunk = images[start : start + args.batch_size]
        x = torch.stack([resize_image(im.float() / 255.0, pipe.size) for im in chunk]).to(device)
        with precision:
            out = pipe.segment(x, steps=args.steps, solver=args.solver)
        colors = out.pseudo_mask.round().clamp(0, 255).to(torch.uint8).cpu()
        for i, image in enumerate(chunk):
            size = tuple(image.shape[-2:])
            path = mine[start + i]
            labels = resize_label(out.labels[i].cpu(), size)
            label_png(to_file_ids(labels, pipe.dataset), args.out / f"{path.stem}.png")
            if pipe.dataset.colors is not None:
                write_image(colorize(labels, pipe), args.out / f"{path.stem}_vis.png")
            color = resize_label(colors[i], size).permute(1, 2, 0).numpy()
            write_image(np.ascontiguousarray(color), args.out / f"{path.stem}_color.png")
    state.wait_for_everyone()
    if state.is_main_process:
        split = f" in {state.num_processes} processes" if state.num_processes > 1 else ""
        print(f"segmented {len(paths)} image(s) with {args.steps} {args.solver} step(s){split}; wrote {args.out}")
    return 0

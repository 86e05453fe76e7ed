"""``semflow synthesize``: class-index mask PNGs to K images each (t = 1 to 0).

The perturbations of mask ``i`` (its position in the sorted input list) come from a generator seeded by
``(--seed, i)`` (:func:`semflow.seeding.make_generator`, as :func:`semflow.evaluation.synthesis.evaluate_synthesis`
gives the ``i``-th mask of a split): the same images whatever ``--batch-size``, and under ``accelerate launch``/``torchrun``, where
each process synthesizes from a contiguous share of the masks, whatever the number of processes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from semflow.cli.common import add_device_arg, add_solver_arg, load_pipeline, positive_int
from semflow.cli.segment import unique_stems
from semflow.cli.speed import add_speed_args, apply_speed_args
from semflow.data.transforms import resize_image, resize_label
from semflow.errors import SemflowInputError
from semflow.io import list_images, read_label, write_image
from semflow.seeding import make_generator


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("synthesize", help="synthesize images from masks (mask -> image)", description=__doc__)
    p.add_argument("masks", nargs="+", type=Path, metavar="MASK", help="class-index PNG files or folders of them")
    p.add_argument("--model", required=True, type=Path, help="model folder")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--steps", type=positive_int, default=25, help="solver steps N (default 25)")
    p.add_argument("--samples", type=positive_int, default=1, help="images per mask K (default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the perturbations: same seed, same images")
    add_solver_arg(p)
    p.add_argument("--batch-size", type=positive_int, default=8, help="masks per forward pass")
    add_device_arg(p)
    add_speed_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from semflow.cli.parallel import inference_device, my_share, process_state, stop_if_any_failed

    state = process_state()  # under a launcher each process synthesizes from its share of the masks
    paths = list_images(args.masks)
    unique_stems(paths)
    indices = my_share(state, len(paths))
    pipe = load_pipeline(args.model, inference_device(state, args.device))
    if not pipe.can_synthesize:
        raise SemflowInputError(f"{args.model} is a {pipe.method} model, which only segments; synthesis needs a "
                                "semflow model")
    labels, error = [], None
    try:
        for index in indices:  # every mask is checked before anything is written
            label = read_label(paths[index])
            try:
                pipe.palette.encode(label)
            except SemflowInputError as err:
                raise SemflowInputError(f"{paths[index]}: {err}") from None
            labels.append(label)
    except SemflowInputError as err:
        error = err
    stop_if_any_failed(state, error)
    precision = apply_speed_args(pipe, args)
    args.out.mkdir(parents=True, exist_ok=True)
    for start in tqdm(range(0, len(indices), args.batch_size), desc="synthesize", unit="batch",
                      disable=not state.is_main_process):
        chunk = labels[start : start + args.batch_size]
        batch = torch.stack([resize_label(lab, pipe.size) for lab in chunk])
        generators = [make_generator(args.seed, index) for index in indices[start : start + args.batch_size]]
        with precision:
            out = pipe.synthesize(batch, steps=args.steps, samples=args.samples, solver=args.solver,
                                  generator=generators)
        for i, label in enumerate(chunk):
            stem = paths[indices[start + i]].stem
            # Back to the mask's own size, so images and masks line up.
            images = (resize_image(out.images[i].float().cpu(), tuple(label.shape)) * 255).round().clamp(0, 255)
            for k in range(args.samples):
                array = images[k].to(torch.uint8).permute(1, 2, 0).numpy()
                write_image(np.ascontiguousarray(array), args.out / f"{stem}_{k}.png")
    state.wait_for_everyone()
    if state.is_main_process:
        split = f" in {state.num_processes} processes" if state.num_processes > 1 else ""
        print(f"synthesized {args.samples} image(s) for each of {len(paths)} mask(s){split}; wrote {args.out}")
    return 0

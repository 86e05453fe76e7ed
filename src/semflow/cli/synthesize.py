"""``semflow synthesize``: class-index mask PNGs to K images each (t = 1 to 0)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from semflow.cli.common import add_device_arg, add_solver_arg, load_pipeline, positive_int
from semflow.cli.segment import unique_stems
from semflow.data.transforms import resize_image, resize_label
from semflow.errors import SemflowInputError
from semflow.io import atomic_save_png, list_images, read_label


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
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    paths = list_images(args.masks)
    unique_stems(paths)
    pipe = load_pipeline(args.model, args.device)
    labels = []
    for path in paths:  # every mask is checked before anything is written
        label = read_label(path)
        try:
            pipe.palette.encode(label)
        except SemflowInputError as err:
            raise SemflowInputError(f"{path}: {err}") from None
        labels.append(label)
    args.out.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(args.seed)
    for start in tqdm(range(0, len(paths), args.batch_size), desc="synthesize", unit="batch"):
        chunk = labels[start : start + args.batch_size]
        batch = torch.stack([resize_label(lab, pipe.size) for lab in chunk])
        out = pipe.synthesize(batch, steps=args.steps, samples=args.samples, solver=args.solver, generator=generator)
        for i, label in enumerate(chunk):
            stem = paths[start + i].stem
            # Back to the mask's own size, so images and masks line up.
            images = (resize_image(out.images[i].float().cpu(), tuple(label.shape)) * 255).round().clamp(0, 255)
            for k in range(args.samples):
                array = images[k].to(torch.uint8).permute(1, 2, 0).numpy()
                atomic_save_png(args.out / f"{stem}_{k}.png", np.ascontiguousarray(array))
    print(f"synthesized {args.samples} image(s) for each of {len(paths)} mask(s); wrote {args.out}")
    return 0

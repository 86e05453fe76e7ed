"""``semflow synthesize``: class-index mask PNGs to K images each (t = 1 to 0).

The perturbations of mask ``i`` (its position in the sorted input list) come from a generator seeded by
``(--seed, i)`` (:func:`semflow.seeding.make_generator`, as :func:`semflow.evaluation.synthesis.evaluate_synthesis`
gives the ``i``-th mask of a split): the same images whatever ``--batch-size``, and under ``accelerate launch``/``torchrun``, where
each process synthesizes from a contiguous share of the masks, whatever the number of processes.
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from semflow.cli.common import (
    add_device_arg, add_solver_arg, load_pipeline, positive_int, seed_int, solver_steps,
)
from semflow.cli.speed import add_speed_args, apply_speed_args
from semflow.data.transforms import resize_label
from semflow.errors import SemflowInputError, SemflowOutputError
from semflow.io import list_images, read_image, read_mask, write_image
from semflow.rendering import mask_labels
from semflow.outputs import FolderLock, check_output_folder, plan_outputs
from semflow.seeding import make_generator


# Images per mask: each is a (K x mask) batch row at the model size, so K is bounded before anything is allocated.
MAX_SAMPLES = 1000


def sample_count(text: str) -> int:
    """argparse type: images per mask, 1 to :data:`MAX_SAMPLES`."""
    value = positive_int(text)
    if value > MAX_SAMPLES:
        raise argparse.ArgumentTypeError(f"{value}; expected at most {MAX_SAMPLES} images per mask")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("synthesize", help="synthesize images from masks (mask -> image)", description=__doc__)
    p.add_argument("masks", nargs="+", type=Path, metavar="MASK",
                   help="class-index PNGs, or colour PNGs in the model's class colours (the app's legend, "
                        "NAME_vis.png) or pseudo-mask colours (NAME_color.png); files or folders of them")
    p.add_argument("--model", required=True, type=Path, help="model folder")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--steps", type=solver_steps, default=25, help="solver steps N (default 25)")
    p.add_argument("--samples", type=sample_count, default=1, help=f"images per mask K (default 1, at most {MAX_SAMPLES})")
    p.add_argument("--seed", type=seed_int, default=0, help="seed of the perturbations: same seed, same images")
    add_solver_arg(p)
    p.add_argument("--colors-from", type=Path, metavar="IMAGE",
                   help="paint every mask with the class colours of this photo (segmented by the model), instead of a "
                        "training scene drawn per image; models trained with model.image_source=class-means")
    p.add_argument("--guidance", type=float, metavar="W",
                   help="classifier-free guidance scale >= 0 of a noise-flow model (default: the model's own; 1: the "
                        "conditional field alone, above 1: stronger guidance towards the mask)")
    p.add_argument("--batch-size", type=positive_int, default=8, help="masks per forward pass")
    add_device_arg(p)
    add_speed_args(p)
    p.set_defaults(func=run)


def read_index_mask(path: Path, pipe) -> torch.Tensor:
    """A mask's classes ``(H, W)``: a class-index mask as stored (uint8, or int32 for 16-bit files: no int64 copy
    of a large mask), or a colour mask in the model's class colours or its pseudo-mask colours, as the app reads
    them (:func:`semflow.rendering.mask_labels`)."""
    array = read_mask(path)
    if array.ndim != 2:
        return mask_labels(array, pipe, str(path), hint="Use the model's class colours (the app's legend, "
                           "NAME_vis.png) or its pseudo-mask colours (NAME_color.png), or a class-index PNG")
    return torch.from_numpy(np.array(array, dtype=np.uint8 if array.dtype == np.uint8 else np.int32))


def label_values(label: torch.Tensor) -> torch.Tensor:
    """The distinct values of a mask, int64. uint8 masks by counting (``torch.unique`` sorts a copy: 1.1 GB more
    for an 8000x8000 mask)."""
    if label.dtype == torch.uint8:
        return torch.bincount(label.flatten(), minlength=256).nonzero().flatten()
    return torch.unique(label).long()


def to_mask_size(image: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """One synthesized image ``(3, h, w)`` in ``[0, 1]`` as uint8 ``(H, W, 3)`` at the mask's size.

    Quantised to 8 bits at the model size first and resized in uint8 (antialiased bilinear), so memory grows by
    3 bytes a pixel, not the 12 of a float image: an 8000x8000 mask's images are written one at a time.
    """
    small = (image.float().cpu() * 255).round().clamp(0, 255).to(torch.uint8)[None]
    if tuple(small.shape[-2:]) != tuple(size):
        small = F.interpolate(small.contiguous(memory_format=torch.channels_last), size=size, mode="bilinear",
                              antialias=True, align_corners=False)
    return np.ascontiguousarray(small[0].permute(1, 2, 0).numpy())


def reference_colors(pipe, path: Path) -> torch.Tensor:
    """The class colours ``(1, K + 1, C)`` of the photo at ``path``, segmented by ``pipe`` in one step."""
    if pipe.config.image_source != "class-means":
        raise SemflowInputError(f"--colors-from needs a model trained with model.image_source=class-means; {path} "
                                "cannot colour this one's syntheses")
    image = read_image(path).float()[None] / 255.0
    return pipe.scene_colors(image, steps=1)


def synthesis_options(pipe, args: argparse.Namespace) -> dict:
    """The model-specific options given on the command line, checked before any work (one line if they do not
    apply or are out of range)."""
    if args.solver is not None and args.solver not in pipe.SOLVERS:
        runs = f"runs {', '.join(pipe.SOLVERS)}" if pipe.SOLVERS else "synthesizes in one pass (no solver)"
        raise SemflowInputError(f"--solver {args.solver}: a {pipe.method} model {runs}")
    if args.guidance is None:
        return {}
    if not getattr(pipe, "guided", False):
        raise SemflowInputError(f"--guidance applies to a noise-flow model; {args.model} is a {pipe.method} model")
    return {"guidance": pipe.check_guidance(args.guidance)}


def run(args: argparse.Namespace) -> int:
    from semflow.cli.parallel import inference_device, my_share, process_state, stop_if_any_failed

    check_output_folder(args.out)
    state = process_state()  # under a launcher each process synthesizes from its share of the masks
    paths = list_images(args.masks)
    indices = my_share(state, len(paths))
    pipe = load_pipeline(args.model, inference_device(state, args.device))
    if not pipe.can_synthesize:
        raise SemflowInputError(f"{args.model} is a {pipe.method} model, which only segments; synthesis needs a "
                                "semflow, noise-flow or spade model")
    options = synthesis_options(pipe, args)
    outputs = plan_outputs(paths, lambda p: [f"{p.stem}_{k}.png" for k in range(args.samples)], args.out)
    labels, error = [], None
    try:
        for index in indices:  # every mask is checked before anything is written
            label = read_index_mask(paths[index], pipe)
            try:
                pipe.palette.encode(label_values(label)[None])  # the values, not a float copy of the mask
            except SemflowInputError as err:
                raise SemflowInputError(f"{paths[index]}: {err}") from None
            labels.append(label)
    except SemflowInputError as err:
        error = err
    colors = None
    if error is None and args.colors_from is not None:
        try:
            colors = reference_colors(pipe, args.colors_from)
        except SemflowInputError as err:
            error = err
    stop_if_any_failed(state, error)
    if colors is not None:
        options["colors"] = colors
    precision = apply_speed_args(pipe, args)
    done, current = 0, args.out
    with FolderLock(args.out) if state.is_main_process else contextlib.nullcontext():
        try:
            for start in tqdm(range(0, len(indices), args.batch_size), desc="synthesize", unit="batch",
                              disable=not state.is_main_process):
                chunk = labels[start : start + args.batch_size]
                batch = torch.stack([resize_label(lab, pipe.size) for lab in chunk])
                generators = [make_generator(args.seed, index) for index in indices[start : start + args.batch_size]]
                with precision:
                    out = pipe.synthesize(batch, steps=args.steps, samples=args.samples, solver=args.solver,
                                          generator=generators, **options)
                for i, label in enumerate(chunk):
                    # Back to the mask's own size, so images and masks line up; one image at a time.
                    for k, current in enumerate(outputs[indices[start + i]]):
                        write_image(to_mask_size(out.images[i, k], tuple(label.shape)), current)
                    done += 1
        except OSError as err:
            for path in outputs[indices[done]] if done < len(indices) else []:
                path.unlink(missing_ok=True)  # the mask being written: all of its images or none
            raise SemflowOutputError(
                f"cannot write {current} ({err.strerror or err}); the images of {done} of "
                f"{len(indices)} mask(s) were written, the others were not"
            ) from None
    state.wait_for_everyone()
    if state.is_main_process:
        split = f" in {state.num_processes} processes" if state.num_processes > 1 else ""
        print(f"synthesized {args.samples} image(s) for each of {len(paths)} mask(s){split}; wrote {args.out}")
    return 0

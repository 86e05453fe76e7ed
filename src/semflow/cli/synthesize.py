"""``semflow synthesize``: class-index mask PNGs to K images each (t = 1 to 0).

The perturbations of mask ``i`` (its position in the sorted input list) come from a generator seeded by
``(--seed, i)`` (:func:`semflow.seeding.make_generator`, as :func:`semflow.evaluation.synthesis.evaluate_synthesis`
gives the ``i``-th mask of a split): the same images whatever ``--batch-size``, and under ``accelerate launch``/``torchrun``, where
each process synthesizes from a contiguous share of the masks, whatever the number of processes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from semflow.cli.common import (
    add_device_arg, add_solver_arg, load_pipeline, positive_int, progress_bar, seed_int, solver_steps,
)
from semflow.cli.speed import add_speed_args, speed_of
from semflow.errors import SemflowInputError
from semflow.files import MAX_SAMPLES


def sample_count(text: str) -> int:
    """argparse type: images per mask, 1 to :data:`~semflow.files.MAX_SAMPLES`."""
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
    p.add_argument("--eta", type=float, metavar="E",
                   help="share in [0, 1] of the painting's noise a SemFlow model redraws at every step (default: the "
                        "model's model.synthesis_eta; 0: the ODE, more faithful to the model's colours, less varied)")
    p.add_argument("--batch-size", type=positive_int, default=8, help="masks per forward pass")
    add_device_arg(p)
    add_speed_args(p)
    p.set_defaults(func=run)


def synthesis_options(pipe, args: argparse.Namespace) -> dict:
    """The model-specific options given on the command line, checked before any work (one line if they do not
    apply or are out of range)."""
    if args.solver is not None and args.solver not in pipe.SOLVERS:
        runs = f"runs {', '.join(pipe.SOLVERS)}" if pipe.SOLVERS else "synthesizes in one pass (no solver)"
        raise SemflowInputError(f"--solver {args.solver}: a {pipe.method} model {runs}")
    options = {}
    if args.eta is not None:
        if pipe.method != "semflow":
            raise SemflowInputError(f"--eta applies to a semflow model; {args.model} is a {pipe.method} model")
        options["eta"] = pipe.check_eta(args.eta, args.solver)
    if args.guidance is None:
        return options
    if not getattr(pipe, "guided", False):
        raise SemflowInputError(f"--guidance applies to a noise-flow model; {args.model} is a {pipe.method} model")
    return {**options, "guidance": pipe.check_guidance(args.guidance)}


def run(args: argparse.Namespace) -> int:
    from semflow.cli.parallel import LaunchedProcesses, inference_device, process_state
    from semflow.files import synthesize_files
    from semflow.io import list_images
    from semflow.outputs import check_output_folder

    check_output_folder(args.out)
    processes = LaunchedProcesses(process_state())  # under a launcher each process synthesizes from its share
    paths = list_images(args.masks)
    pipe = load_pipeline(args.model, inference_device(processes.state, args.device))
    if not pipe.can_synthesize:
        raise SemflowInputError(f"{args.model} is a {pipe.method} model, which only segments; synthesis needs a "
                                "semflow, noise-flow or spade model")
    done = synthesize_files(pipe, paths, args.out, steps=args.steps, samples=args.samples, seed=args.seed,
                            solver=args.solver, colors_from=args.colors_from, options=synthesis_options(pipe, args),
                            batch_size=args.batch_size, processes=processes, prepare=speed_of(args),
                            progress=progress_bar("synthesize", processes.is_main_process))
    if processes.is_main_process:
        split = f" in {processes.num_processes} processes" if processes.num_processes > 1 else ""
        print(f"synthesized {args.samples} image(s) for each of {done.inputs} mask(s){split}; wrote {args.out}")
    return 0

"""Helpers the commands share: device choice, step lists, loading a model for inference."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

import torch

from semflow.errors import SemflowInputError

from semflow.flow.solver import MAX_STEPS, SOLVERS

if TYPE_CHECKING:
    from semflow.models.base import Segmenter


def add_device_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto",
                        help="torch device for inference: auto (cuda if available, else cpu), cpu, cuda, cuda:1 ...")


def add_solver_arg(parser: argparse.ArgumentParser, segmenters: bool = False) -> None:
    """``--solver``: SemFlow's ODE solvers; with ``segmenters`` also the baselines' samplers (default: the model's own)."""
    if not segmenters:
        parser.add_argument("--solver", default=None, choices=SOLVERS,
                            help="ODE solver (default: the model's own, euler unless its model.solver says): euler "
                                 "(the paper), heun or midpoint (2 network calls per step), or snap "
                                 "(Euler steps towards the predicted mask snapped to the palette)")
        return
    from semflow.models.base import all_solvers

    parser.add_argument("--solver", choices=all_solvers(),
                        help="semflow models: euler (the paper; the default unless the model's model.solver says), heun, "
                             "midpoint or snap; dsm models: ddim (default) "
                             "or ddpm; discriminative models: forward (one pass)")


def pick_device(name: str) -> torch.device:
    """``auto`` is the first CUDA device when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise SemflowInputError(f"--device {name!r} is not a torch device; expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SemflowInputError(f"--device {name}: CUDA is not available on this machine")
    return device


def parse_steps(text: str) -> list[int]:
    """``"1,2,5"`` to ``[1, 2, 5]``; every entry a whole number >= 1."""
    try:
        steps = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise SemflowInputError(f"--steps {text!r}; expected comma-separated whole numbers such as 1,2,5,10,25") from None
    if not steps or min(steps) < 1 or max(steps) > MAX_STEPS:
        raise SemflowInputError(f"--steps {text!r}; expected whole numbers from 1 to {MAX_STEPS}")
    return steps


def solver_steps(text: str) -> int:
    """argparse type: solver steps, a whole number from 1 to :data:`~semflow.flow.solver.MAX_STEPS`."""
    value = positive_int(text)
    if value > MAX_STEPS:
        raise argparse.ArgumentTypeError(f"{value}; expected at most {MAX_STEPS} solver steps")
    return value


def seed_int(text: str) -> int:
    """argparse type: a seed, a whole number from 0 to :data:`~semflow.seeding.MAX_SEED`."""
    from semflow.seeding import MAX_SEED

    value = non_negative_int(text)
    if value > MAX_SEED:
        raise argparse.ArgumentTypeError(f"{value}; expected a seed from 0 to {MAX_SEED}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: a whole number >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value}; expected >= 0")
    return value


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}; expected >= 1")
    return value


def require_segmenter(pipe: Segmenter, where: Path) -> None:
    """One line where the model cannot segment (a synthesis-only model)."""
    if not pipe.can_segment:
        raise SemflowInputError(f"{where} is a {pipe.method} model, which only synthesizes images from masks; "
                                "segmentation needs a semflow, dsm or discriminative model")


def load_pipeline(model: Path, device: str | torch.device) -> Segmenter:
    """A model folder, loaded and moved to ``device`` (a ``--device`` name or a torch device), in eval mode."""
    from semflow.models.base import Segmenter

    device = device if isinstance(device, torch.device) else pick_device(device)
    return Segmenter.from_pretrained(model).to(device).eval()


def progress_bar(what: str, show: bool = True) -> Callable[[Iterable[int]], Iterable[int]]:
    """A tqdm bar over batches, for :func:`semflow.files.segment_files`'s ``progress`` (hidden when not ``show``)."""
    from tqdm.auto import tqdm

    return lambda batches: tqdm(batches, desc=what, unit="batch", disable=not show)

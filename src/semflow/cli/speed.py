"""``--dtype``, ``--channels-last`` and ``--compile`` for ``segment``, ``synthesize`` and ``evaluate``; what they
do is :func:`semflow.speed.speed_up` (the measurements behind the defaults are in its docstring)."""

from __future__ import annotations

import argparse
import contextlib
from typing import TYPE_CHECKING, Callable

from semflow.speed import DTYPES, speed_up

if TYPE_CHECKING:
    from semflow.models.base import Segmenter


def add_speed_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32",
                        help="fp32 (default) or bf16 autocast: matrix products in bfloat16, the ODE state in "
                             "float32 (faster on recent GPUs and on CPUs with AMX/AVX512-BF16; slower elsewhere)")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                        help="convolutions in channels-last memory layout (default: on for the CPU, where it was "
                             "measured faster; off on GPUs)")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the velocity network (pays only over many images: compiling takes "
                             "tens of seconds)")


def apply_speed_args(pipe: Segmenter, args: argparse.Namespace) -> contextlib.AbstractContextManager:
    """:func:`semflow.speed.speed_up` with the parsed flags."""
    return speed_up(pipe, dtype=args.dtype, channels_last=args.channels_last, compile=args.compile)


def speed_of(args: argparse.Namespace) -> Callable[[Segmenter], contextlib.AbstractContextManager]:
    """The parsed flags as the ``prepare`` of :func:`semflow.files.segment_files` (applied once inputs are checked)."""
    return lambda pipe: apply_speed_args(pipe, args)

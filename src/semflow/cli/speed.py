"""Inference speed options shared by ``segment``, ``synthesize`` and ``evaluate``: precision, memory layout and
``torch.compile``, each measured by ``bench/segment_latency.py`` (numbers in ``docs/distributed.md``).

Defaults follow the measurements on the project's 2-core CPU (AMD EPYC, AVX2, no AVX512-BF16/AMX): channels-last
is on for the CPU (11-30% faster segmentation); bf16 autocast is off (20x slower there, having no bf16 units;
recent GPUs and CPUs with AMX are another matter); ``torch.compile`` is off (tens of seconds to compile, no
gain on one thread). On GPUs, where nothing was measured here, everything is off unless asked for.
"""

from __future__ import annotations

import argparse
import contextlib
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from semflow.pipeline import SemFlowPipeline

DTYPES = {"fp32": None, "bf16": torch.bfloat16}


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


def apply_speed_args(pipe: SemFlowPipeline, args: argparse.Namespace) -> contextlib.AbstractContextManager:
    """Apply ``--channels-last`` and ``--compile`` to ``pipe`` in place; return the context to run it in
    (``torch.autocast`` for ``--dtype bf16``, else nothing).

    The weights stay float32 under bf16 autocast, so the Euler updates ``z + dt * v`` accumulate in float32.
    """
    device = next(pipe.parameters()).device
    if args.channels_last or (args.channels_last is None and device.type == "cpu"):
        pipe.to(memory_format=torch.channels_last)
    if args.compile:
        pipe.velocity.network.compile()
    dtype = DTYPES[args.dtype]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)

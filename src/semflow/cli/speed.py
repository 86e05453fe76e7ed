"""Inference speed options shared by ``segment``, ``synthesize`` and ``evaluate``: precision, memory layout and
``torch.compile``. All are off by default: measured on a 2-core CPU none pays for the models semflow trains
there (``bench/segment_latency.py``, numbers in ``docs/distributed.md``); on GPUs bf16 usually does.
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
    parser.add_argument("--channels-last", action="store_true",
                        help="keep convolution weights in channels-last memory layout")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the velocity network (pays only over many images: compiling takes "
                             "tens of seconds)")


def apply_speed_args(pipe: SemFlowPipeline, args: argparse.Namespace) -> contextlib.AbstractContextManager:
    """Apply ``--channels-last`` and ``--compile`` to ``pipe`` in place; return the context to run it in
    (``torch.autocast`` for ``--dtype bf16``, else nothing).

    The weights stay float32 under bf16 autocast, so the Euler updates ``z + dt * v`` accumulate in float32.
    """
    if args.channels_last:
        pipe.to(memory_format=torch.channels_last)
    if args.compile:
        pipe.velocity.network.compile()
    dtype = DTYPES[args.dtype]
    if dtype is None:
        return contextlib.nullcontext()
    device = next(pipe.parameters()).device
    return torch.autocast(device_type=device.type, dtype=dtype)

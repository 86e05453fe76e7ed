"""Inference speed options: precision, memory layout and ``torch.compile``, applied to a loaded model.

Each was measured by ``bench/segment_latency.py`` (numbers in ``docs/distributed.md``). Defaults follow the
measurements on the project's 2-core CPU (AMD EPYC, AVX2, no AVX512-BF16/AMX): channels-last is on for the CPU
(11-30% faster segmentation); bf16 autocast is off (20x slower there, having no bf16 units; recent GPUs and CPUs
with AMX are another matter); ``torch.compile`` is off (tens of seconds to compile, no gain on one thread). On
GPUs, where nothing was measured here, everything is off unless asked for. The device is the model's own.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import torch

from semflow.errors import SemflowInputError

if TYPE_CHECKING:
    from semflow.models.base import Segmenter

DTYPES = {"fp32": None, "bf16": torch.bfloat16}


def speed_up(model: Segmenter, dtype: str = "fp32", channels_last: bool | None = None,
             compile: bool = False) -> contextlib.AbstractContextManager:
    """Apply ``channels_last`` (``None``: on for the CPU only) and ``compile`` (the network) to ``model`` in place;
    return the context to run it in (``torch.autocast`` for ``dtype="bf16"``, else nothing).

    The weights stay float32 under bf16 autocast, so the Euler updates ``z + dt * v`` accumulate in float32.
    """
    if dtype not in DTYPES:
        raise SemflowInputError(f"dtype {dtype!r}; expected one of {', '.join(DTYPES)}")
    device = next(model.parameters()).device
    if channels_last or (channels_last is None and device.type == "cpu"):
        model.to(memory_format=torch.channels_last)
    if compile:
        model.network.compile()
    if DTYPES[dtype] is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=DTYPES[dtype])

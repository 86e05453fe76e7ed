"""What the launcher (``accelerate launch``, ``torchrun``) set up, checked before a run starts.

Outside a launcher everything here describes one process, so training needs no separate code path.
Accelerate is imported only by :func:`make_accelerator`, so the commands can ask the cheap questions.
"""

from __future__ import annotations

import os
import sys

from typing import TYPE_CHECKING

import torch

from semflow.config import TrainConfig
from semflow.errors import SemflowInputError

if TYPE_CHECKING:
    from accelerate import Accelerator

PRECISIONS = ("no", "bf16", "fp16")


def launched_processes() -> int:
    """How many processes the launcher says it started (``WORLD_SIZE``; 1 without a launcher)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def multiprocess_without_accelerator() -> bool:
    """A launcher started several processes (``WORLD_SIZE > 1``) on a machine with no GPU-like device.

    Accelerate then runs each process alone (``DistributedType.NO``) unless told to use the CPU, so
    ``accelerate launch --multi_gpu`` or ``torchrun`` on a CPU machine would silently run N copies.
    """
    has_device = torch.accelerator.is_available() if hasattr(torch, "accelerator") else torch.cuda.is_available()
    return launched_processes() > 1 and not has_device


def resolve_precision(tc: TrainConfig) -> str:
    """``train.mixed_precision``, or the launcher's (``accelerate launch --mixed_precision``, an accelerate
    config file) when the config leaves it at ``no``; the two may not disagree."""
    launcher = os.environ.get("ACCELERATE_MIXED_PRECISION", "no").lower()
    if launcher not in PRECISIONS:
        raise SemflowInputError(f"the launcher asks for mixed precision {launcher!r}; semflow trains in no, bf16 or fp16")
    if tc.mixed_precision != "no" and launcher not in ("no", tc.mixed_precision):
        raise SemflowInputError(f"train.mixed_precision={tc.mixed_precision!r} but the launcher asks for {launcher!r}; "
                                "give one of them")
    return tc.mixed_precision if tc.mixed_precision != "no" else launcher


def make_accelerator(tc: TrainConfig) -> Accelerator:
    """The Accelerator for a run: processes and device from the launcher, precision and accumulation from ``tc``.

    The learning-rate scheduler is stepped by the loop once per optimiser step (``step_scheduler_with_optimizer
    =False``): Accelerate's default steps it once per process, which would run the schedule N times too fast.
    """
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration

    accelerator = Accelerator(
        cpu=multiprocess_without_accelerator(),
        mixed_precision=tc.mixed_precision,
        gradient_accumulation_steps=tc.gradient_accumulation_steps,
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=tc.seed),
        step_scheduler_with_optimizer=False,
    )
    if launched_processes() != accelerator.num_processes:
        raise RuntimeError(f"the launcher started {launched_processes()} processes but Accelerate set up "
                           f"{accelerator.num_processes} ({accelerator.distributed_type}); they would train "
                           "separate copies. Check the accelerate config (accelerate env) and the devices.")
    if accelerator.num_processes > 1:
        print(f"semflow train: process {accelerator.process_index} of {accelerator.num_processes} "
              f"({accelerator.distributed_type.value}, {accelerator.device})", file=sys.stderr, flush=True)
    return accelerator


def all_succeeded(accelerator: Accelerator, ok: bool) -> bool:
    """Whether every process reports ``ok`` (one all-reduce; without a launcher, ``ok`` itself).

    A process that fails a write alone must not leave the others waiting at the next collective call: each
    process reports, all learn the outcome, and all stop together.
    """
    if accelerator.num_processes == 1:
        return ok
    flag = torch.tensor([0.0 if ok else 1.0], device=accelerator.device)
    return float(accelerator.reduce(flag, reduction="sum")[0]) == 0.0

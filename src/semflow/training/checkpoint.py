"""Resumable checkpoints: where a run stands, and writing, listing and choosing ``checkpoints/step_NNNNNNN``.

Every checkpoint holds the full training state (weights, EMA, optimizer, scheduler, RNG states, data position)
written with ``Accelerator.save_state`` to a temporary folder and renamed into place; the last
``checkpoints_total_limit`` are kept.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator

from semflow.config import save_json
from semflow.errors import SemflowInputError
from semflow.seeding import reseed

CHECKPOINTS_DIR = "checkpoints"
PROGRESS_FILE = "progress.json"


@dataclass
class Progress:
    """Where a run stands; saved in every checkpoint (``state_dict``/``load_state_dict`` for Accelerate).

    The training noise (posterior sample, perturbation, ``t``) of each batch is drawn from a generator
    seeded by ``(seed, process, epoch, batch)`` (:meth:`noise_for`), so it needs no saved state: a resumed
    run draws what the uninterrupted one would have, in every process (Accelerate saves custom state from
    process 0 only, which could not hold per-process generator states).
    """

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]

    def noise_for(self, generator: torch.Generator, seed: int, process: int) -> torch.Generator:
        """Reseed ``generator`` for the current batch of process ``process`` and return it."""
        return reseed(generator, seed, 1 + process, self.epoch, self.batch_in_epoch)


def list_checkpoints(out: Path) -> list[Path]:
    """Complete checkpoints under ``out/checkpoints``, oldest first."""
    folder = Path(out) / CHECKPOINTS_DIR
    return sorted(p for p in folder.glob("step_*") if p.is_dir()) if folder.is_dir() else []


def resolve_resume(out: Path, resume: str | None) -> Path | None:
    """``latest`` (newest checkpoint of ``out``, or none yet), a checkpoint folder, or ``None``."""
    if resume is None:
        return None
    if resume == "latest":
        found = list_checkpoints(out)
        return found[-1] if found else None
    path = Path(resume)
    if not (path / PROGRESS_FILE).is_file():
        raise SemflowInputError(f"--resume {resume}: not a semflow checkpoint folder (expected {path}/{PROGRESS_FILE})")
    return path


def save_checkpoint(accelerator: Accelerator, out: Path, progress: Progress, limit: int) -> Path:
    """Write ``out/checkpoints/step_NNNNNNN`` (all processes take part) and keep the newest ``limit`` (0: all)."""
    final = out / CHECKPOINTS_DIR / f"step_{progress.step:07d}"
    tmp = final.with_name(f".{final.name}.tmp")
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        save_json({"step": progress.step, "epoch": progress.epoch}, tmp / PROGRESS_FILE)
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        for old in list_checkpoints(out)[:-limit] if limit > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final

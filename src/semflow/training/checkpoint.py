"""Resumable checkpoints: where a run stands, and writing, checking, listing and choosing ``checkpoints/step_NNNNNNN``.

Every checkpoint holds the full training state. Accelerate's ``save_state`` writes the weights (safetensors), the
optimizer, scheduler and random states (``torch.save`` files, which Accelerate reads back with
``weights_only=True``: an allow-list of tensors, numbers and numpy arrays, never arbitrary objects). semflow's own
state is never pickled: where the run stands and which run it is go in ``progress.json``, the EMA weights in
``ema.safetensors``. Before a checkpoint is loaded every file in it is opened the way it will be read (a pickle
that needs more than the allow-list, a ``custom_checkpoint_*.pkl`` that Accelerate would unpickle, a truncated
file, a missing part: each is refused with one line), so a crafted checkpoint cannot run code.

A checkpoint is written to a temporary folder and renamed into place; a failed write (a full disk) removes the
temporary folder and leaves the earlier checkpoints as they were. The last ``checkpoints_total_limit`` are kept.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from accelerate import Accelerator
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from semflow.config import MAX_TRAIN_STEPS, RunConfig, save_json, to_dict
from semflow.errors import SemflowInputError, SemflowOutputError
from semflow.io import usual_permissions
from semflow.outputs import write_failure
from semflow.training.launcher import all_succeeded
from semflow.seeding import reseed
from semflow.weights import UnsafePickle, load_weights_only

CHECKPOINTS_DIR = "checkpoints"
PROGRESS_FILE = "progress.json"
EMA_FILE = "ema.safetensors"
CHECKPOINT_FORMAT = 2
# Files Accelerate writes with torch.save and reads with weights_only=True; checked the same way before loading.
PICKLE_SUFFIXES = (".bin", ".pkl", ".pt", ".pth")
# Accelerate reads these with weights_only=False (any object: code execution); semflow never writes them.
UNSAFE_PREFIX = "custom_checkpoint_"
# Where a checkpoint found incomplete is moved, so that "latest" and the keep-last rule skip it.
BROKEN_PREFIX = "broken-"
# Settings that may change between a run and its resumption: they change how it runs, not what it computes.
OPERATIONAL = ("steps", "max_minutes", "num_workers", "log_every", "checkpoint_every", "checkpoints_total_limit",
               "cache", "skip_bad", "mixed_precision")


@dataclass
class Progress:
    """Where a run stands; saved as JSON in every checkpoint.

    The training noise (posterior sample, perturbation, ``t``) of each batch is drawn from a generator
    seeded by ``(seed, process, epoch, batch)`` (:meth:`noise_for`), so it needs no saved state: a resumed
    run draws what the uninterrupted one would have, in every process.
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


def run_identity(config: RunConfig) -> dict[str, Any]:
    """What makes two runs the same run: the resolved configuration without the :data:`OPERATIONAL` settings."""
    data = to_dict(config)
    data["train"] = {k: v for k, v in data["train"].items() if k not in OPERATIONAL}
    return json.loads(json.dumps(data))  # tuples to lists, as they come back from a JSON file


def identity_differences(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested mappings (``model.size``, ``train.lr``)."""
    keys: list[str] = []
    for key in sorted(set(a) | set(b)):
        left, right = a.get(key, "<absent>"), b.get(key, "<absent>")
        if isinstance(left, dict) and isinstance(right, dict):
            keys += identity_differences(left, right, f"{prefix}{key}.")
        elif left != right:
            keys.append(f"{prefix}{key}")
    return keys


def list_checkpoints(out: Path) -> list[Path]:
    """Checkpoints under ``out/checkpoints`` (not yet checked), oldest first."""
    folder = Path(out) / CHECKPOINTS_DIR
    return sorted(p for p in folder.glob("step_*") if p.is_dir()) if folder.is_dir() else []


class IncompleteCheckpoint(SemflowInputError):
    """A checkpoint with a missing, truncated or unreadable part (a newer one may be skipped for an older one)."""


def _read_progress(path: Path) -> dict[str, Any]:
    file = path / PROGRESS_FILE
    if not file.is_file():
        raise IncompleteCheckpoint(f"{path}: no {PROGRESS_FILE}")
    try:
        data = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise IncompleteCheckpoint(f"{file}: unreadable ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), int) and not isinstance(data.get(k), bool)
                                             for k in ("step", "epoch", "batch_in_epoch")):
        raise IncompleteCheckpoint(f"{file}: expected step, epoch and batch_in_epoch (whole numbers)")
    step, epoch, batch = data["step"], data["epoch"], data["batch_in_epoch"]
    # A checkpoint is written after a step, in the folder named after it; a run cannot pass more epochs than
    # steps, nor more batches of an epoch than micro-batches (steps x accumulation <= MAX_TRAIN_STEPS each).
    if not (1 <= step <= MAX_TRAIN_STEPS and 0 <= epoch <= step and 0 <= batch <= MAX_TRAIN_STEPS):
        raise SemflowInputError(f"{file}: step {step}, epoch {epoch}, batch {batch}; expected a step from 1 to "
                                f"{MAX_TRAIN_STEPS:.0e}, an epoch from 0 to the step and a batch >= 0 (the file was "
                                "edited or damaged)")
    if path.name.startswith("step_") and path.name != f"step_{step:07d}":
        raise SemflowInputError(f"{file}: says step {step}, but the checkpoint is {path.name} (the file was edited "
                                "or moved)")
    return data


def _check_safetensors(file: Path) -> None:
    """Every tensor readable, and finite: NaN weights would be trained on and fail steps later."""
    try:
        with safe_open(str(file), framework="pt") as f:
            for key in f.keys():
                tensor = f.get_tensor(key)
                if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                    raise SemflowInputError(f"{file}: {key} holds NaN or infinite values; the checkpoint is damaged "
                                            "(resume from an earlier one: --resume PATH)")
    except (SafetensorError, OSError, ValueError) as err:
        if isinstance(err, SemflowInputError):
            raise
        raise IncompleteCheckpoint(f"{file}: truncated or corrupt ({str(err).splitlines()[0]})") from None


def _check_pickle(file: Path) -> None:
    """Open a torch.save file as Accelerate will (weights_only=True with its numpy allow-list), mapped, not read."""
    from accelerate.utils.other import TORCH_SAFE_GLOBALS

    try:
        load_weights_only(file, "a training checkpoint's state", TORCH_SAFE_GLOBALS, mmap=True)
    except UnsafePickle:
        raise
    except SemflowInputError as err:
        raise IncompleteCheckpoint(str(err)) from None


def check_checkpoint(path: Path, identity: dict[str, Any] | None, processes: int = 1) -> dict[str, Any]:
    """Check that ``path`` is a complete checkpoint of the run ``identity`` that loads without running code.

    Returns:
        The checkpoint's ``progress.json``.

    Raises:
        IncompleteCheckpoint: a part is missing, truncated or unreadable.
        SemflowInputError: a file would need unpickling beyond tensors and numbers, or the checkpoint belongs
            to another run (another configuration, or written by an older semflow).
    """
    path = Path(path)
    unsafe = sorted(p.name for p in path.rglob(f"{UNSAFE_PREFIX}*"))
    if unsafe:
        raise SemflowInputError(
            f"{path}: refused, it holds {unsafe[0]}, which Accelerate would unpickle as arbitrary objects "
            "(code execution); semflow never writes such files (a crafted checkpoint, or one of semflow < 0.2)"
        )
    progress = _read_progress(path)
    if progress.get("format") != CHECKPOINT_FORMAT or "run" not in progress:
        raise SemflowInputError(f"{path}: checkpoint format {progress.get('format')!r}; this semflow resumes "
                                f"format {CHECKPOINT_FORMAT} (start the run again with --overwrite)")
    if identity is not None and progress["run"] != identity:
        differ = identity_differences(progress["run"], identity)
        raise SemflowInputError(
            f"{path} belongs to another run (different {', '.join(differ[:4])}{' ...' if len(differ) > 4 else ''}); "
            "resume it with its own configuration, or start this one in another --out (or with --overwrite)"
        )
    needed = ["model.safetensors", "optimizer.bin", "scheduler.bin",
              *(f"random_states_{i}.pkl" for i in range(processes))]
    if progress.get("ema") is not None:
        needed.append(EMA_FILE)
    weights_elsewhere = (path / "pytorch_model").is_dir() or any(path.glob("pytorch_model*"))  # DeepSpeed, .bin
    for name in needed:
        if not (path / name).is_file() and not (name == "model.safetensors" and weights_elsewhere):
            raise IncompleteCheckpoint(f"{path}: missing {name}")
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        if file.suffix == ".safetensors":
            _check_safetensors(file)
        elif file.suffix in PICKLE_SUFFIXES:
            _check_pickle(file)
    return progress


def resolve_resume(out: Path, resume: str | None, identity: dict[str, Any] | None = None, processes: int = 1,
                   say: Callable[[str], None] = print, set_aside: bool = True) -> Path | None:
    """The checkpoint to resume from, checked (:func:`check_checkpoint`).

    ``resume``: ``None`` (a fresh run), ``latest`` (the newest complete checkpoint of ``out``, or none yet: an
    incomplete newer one is reported through ``say`` and, with ``set_aside``, renamed ``broken-step_N``), or a
    checkpoint folder (which must be complete).
    """
    if resume is None:
        return None
    if resume != "latest":
        path = Path(resume)
        if not (path / PROGRESS_FILE).is_file():
            raise SemflowInputError(f"--resume {resume}: not a semflow checkpoint folder (expected {path}/{PROGRESS_FILE})")
        check_checkpoint(path, identity, processes)
        return path
    found = list_checkpoints(out)
    for path in reversed(found):
        try:
            check_checkpoint(path, identity, processes)
        except IncompleteCheckpoint as err:
            aside = path.with_name(BROKEN_PREFIX + path.name)
            if set_aside:
                shutil.rmtree(aside, ignore_errors=True)
                path.rename(aside)
            say(f"warning: skipping an incomplete checkpoint: {err}"
                + (f" (moved to {aside.name}); falling back to the previous one" if set_aside else ""))
            continue
        return path
    if found:
        raise SemflowInputError(f"{out / CHECKPOINTS_DIR}: no complete checkpoint to resume from "
                                f"(all {len(found)} are incomplete); start again with --overwrite")
    return None


def load_extra_state(path: Path, progress: Progress, ema: Any | None, device: torch.device) -> None:
    """Fill ``progress`` (and the EMA, if any) from a checked checkpoint's ``progress.json`` and ``ema.safetensors``."""
    data = _read_progress(Path(path))
    progress.load_state_dict(data)
    if ema is not None:
        if data.get("ema") is None:
            raise SemflowInputError(f"{path}: the run has --ema-decay, but the checkpoint holds no EMA weights")
        tensors = load_file(str(Path(path) / EMA_FILE))
        state = dict(data["ema"])
        state["shadow_params"] = [tensors[f"shadow.{i}"].to(device) for i in range(len(tensors))]
        if len(state["shadow_params"]) != len(ema.shadow_params):
            raise SemflowInputError(f"{path / EMA_FILE}: {len(tensors)} tensors for {len(ema.shadow_params)} parameters")
        ema.load_state_dict(state)


def _write_extra_state(folder: Path, progress: Progress, ema: Any | None, identity: dict[str, Any]) -> None:
    ema_meta = None
    if ema is not None:
        state = ema.state_dict()
        shadow = state.pop("shadow_params")
        save_file({f"shadow.{i}": t.detach().cpu().contiguous() for i, t in enumerate(shadow)}, str(folder / EMA_FILE))
        ema_meta = state
    save_json({"format": CHECKPOINT_FORMAT, **progress.state_dict(), "ema": ema_meta, "run": identity},
              folder / PROGRESS_FILE)


def save_checkpoint(accelerator: Accelerator, out: Path, progress: Progress, limit: int, identity: dict[str, Any],
                    ema: Any | None = None) -> Path:
    """Write ``out/checkpoints/step_NNNNNNN`` (all processes take part) and keep the newest ``limit`` (0: all).

    Raises:
        SemflowOutputError: the checkpoint could not be written (a full disk); its temporary folder is removed
            and the earlier checkpoints are kept.
    """
    final = out / CHECKPOINTS_DIR / f"step_{progress.step:07d}"
    tmp = final.with_name(f".{final.name}.tmp")
    error: BaseException | None = None
    try:
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(tmp))
    except Exception as err:  # noqa: BLE001  (every process reports before any raises: see all_succeeded)
        error = err
    if all_succeeded(accelerator, error is None) and accelerator.is_main_process:
        try:
            _write_extra_state(tmp, progress, ema, identity)
            usual_permissions(tmp)
            shutil.rmtree(final, ignore_errors=True)
            tmp.rename(final)
        except Exception as err:  # noqa: BLE001
            error = err
    if not all_succeeded(accelerator, error is None):
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        reason = write_failure(error, tmp.parent) if error is not None else "another process could not write its part"
        if reason is None:
            raise error  # type: ignore[misc]  # not a refused write: a fault to report as it is
        kept = [p.name for p in list_checkpoints(out)]
        raise SemflowOutputError(
            f"cannot write checkpoint {final} ({reason}); its temporary files are removed and nothing "
            f"of step {progress.step} was saved; "
            + (f"the last complete checkpoint is {kept[-1]} (--resume latest)" if kept else "no earlier checkpoint exists")
        )
    if accelerator.is_main_process:
        for old in list_checkpoints(out)[:-limit] if limit > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final

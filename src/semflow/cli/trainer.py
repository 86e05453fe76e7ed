"""The training loop: HF Accelerate around :meth:`SemFlowPipeline.training_loss`.

Accelerate picks the device(s), processes and precision, so the same loop runs on a laptop CPU and on
GPUs (``accelerate launch -m semflow train ...``). The library below knows nothing of it.

Runs are resumable: every ``checkpoint_every`` steps the full training state (weights, EMA, optimizer,
scheduler, RNG states, data position, noise generator) is written with ``Accelerator.save_state`` to a
temporary folder and renamed to ``checkpoints/step_NNNNNNN``; the last ``checkpoints_total_limit`` are kept.
SIGINT/SIGTERM finish the current step, write a checkpoint and stop; a non-finite loss stops the run
naming the step, keeping the last good checkpoint.
"""

from __future__ import annotations

import csv
import io
import math
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, set_seed
from diffusers.optimization import get_cosine_schedule_with_warmup
from diffusers.training_utils import EMAModel
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from semflow.config import RunConfig, save_json, to_dict
from semflow.data import open_dataset
from semflow.data.base import SegmentationDataset
from semflow.data.cache import DecodedCache
from semflow.data.paired import PairedDataset, write_bad_files
from semflow.data.transforms import TRAIN_SCALE, train_transform
from semflow.errors import SemflowInputError
from semflow.io import atomic_write_bytes
from semflow.pipeline import SemFlowPipeline

LOSS_FILE = "loss.csv"
BAD_FILES = "bad_files.tsv"
TRAIN_CONFIG_FILE = "train_config.json"
CHECKPOINTS_DIR = "checkpoints"


class TrainingPairs(Dataset):
    """Augmented ``(image, label)`` pairs at the model size; the augmentation of sample ``i`` in epoch ``e``
    is drawn from a generator seeded by ``(seed, e, i)``, so a seed reproduces a run whatever the workers."""

    def __init__(self, dataset: SegmentationDataset, size: tuple[int, int], seed: int) -> None:
        self.dataset, self.size, self.seed, self.epoch = dataset, size, seed, 0

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        generator = torch.Generator().manual_seed(hash((self.seed, self.epoch, index)) & 0x7FFF_FFFF_FFFF)
        return train_transform(self.dataset[index], self.size, generator)


@dataclass
class Progress:
    """Where a run stands; saved in every checkpoint (``state_dict``/``load_state_dict`` for Accelerate)."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    noise: torch.Generator = field(default_factory=torch.Generator)

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                "noise": self.noise.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        self.noise.set_state(state["noise"])


@dataclass
class TrainResult:
    """What a finished (or interrupted) run reports."""

    steps: int
    final_loss: float
    seconds: float
    seconds_per_step: float
    interrupted: bool = False


class StopRequest:
    """Turns SIGINT/SIGTERM into a flag the loop checks after each step (restored on exit)."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.signal = signum

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def report_bad_files(dataset: SegmentationDataset, path: Path, main_process: bool = True) -> None:
    """With ``--skip-bad``: warn with the count and list the left-out files in ``path``."""
    bad = list(getattr(dataset, "bad_files", []))
    if bad and main_process:
        write_bad_files(bad, path)
        print(f"warning: {len(bad)} bad file(s) left out of {dataset.info.name}/{dataset.split}; listed in {path}",
              file=sys.stderr)


def _write_loss(path: Path, rows: list[tuple[int, float, float, float]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["step", "loss", "lr", "elapsed_s"])
    writer.writerows(rows)
    atomic_write_bytes(path, buffer.getvalue().encode())


def _read_loss(path: Path, up_to: int) -> list[tuple[int, float, float, float]]:
    if not path.is_file():
        return []
    with path.open() as f:
        rows = [(int(r["step"]), float(r["loss"]), float(r["lr"]), float(r["elapsed_s"])) for r in csv.DictReader(f)]
    return [r for r in rows if r[0] <= up_to]


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
    if not (path / "progress.json").is_file():
        raise SemflowInputError(f"--resume {resume}: not a semflow checkpoint folder (expected {path}/progress.json)")
    return path


def _save_checkpoint(accelerator: Accelerator, out: Path, progress: Progress, limit: int) -> Path:
    final = out / CHECKPOINTS_DIR / f"step_{progress.step:07d}"
    tmp = final.with_name(f".{final.name}.tmp")
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        save_json({"step": progress.step, "epoch": progress.epoch}, tmp / "progress.json")
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        for old in list_checkpoints(out)[:-limit] if limit > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def train(config: RunConfig, out: Path, dataset: SegmentationDataset | None = None,
          progress_bar: bool = True, resume: str | None = None) -> tuple[SemFlowPipeline, TrainResult]:
    """Train a SemFlow model as ``config`` says and write the model folder to ``out``.

    ``out`` receives the model (``semflow_config.json``, ``network/``, ``codec/``; the EMA weights when
    ``ema_decay`` is set), ``train_config.json`` (the resolved configuration), ``loss.csv`` and
    ``checkpoints/``. ``resume`` is ``latest`` or a checkpoint folder.
    """
    tc = config.train
    accelerator = Accelerator(
        mixed_precision=tc.mixed_precision,
        gradient_accumulation_steps=tc.gradient_accumulation_steps,
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=tc.seed),
    )
    set_seed(tc.seed)
    out = Path(out)
    dataset = dataset if dataset is not None else open_dataset(tc.data, "train", skip_bad=tc.skip_bad)
    if len(dataset) == 0:
        raise SemflowInputError(f"data set {tc.data!r}: the train split is empty")
    report_bad_files(dataset, out / BAD_FILES, accelerator.is_main_process)
    pipeline = SemFlowPipeline.from_config(config.model, dataset.info)
    if tc.cache and isinstance(dataset, PairedDataset):
        with accelerator.main_process_first():  # one process builds, the others reuse
            dataset = DecodedCache.build(dataset, min_size=pipeline.size, scale_max=TRAIN_SCALE[1],
                                         workers=max(tc.num_workers, 1))
    pipeline.codec.requires_grad_(False)
    pipeline.to(accelerator.device)

    pairs = TrainingPairs(dataset, pipeline.size, tc.seed)
    loader = DataLoader(pairs, batch_size=tc.batch_size, shuffle=True, drop_last=len(pairs) >= tc.batch_size,
                        num_workers=tc.num_workers)
    optimizer = torch.optim.AdamW(pipeline.velocity.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    scheduler = get_cosine_schedule_with_warmup(optimizer, min(tc.warmup_steps, tc.steps // 2), tc.steps)
    velocity, optimizer, loader, scheduler = accelerator.prepare(pipeline.velocity, optimizer, loader, scheduler)
    ema = EMAModel(pipeline.velocity.parameters(), decay=tc.ema_decay) if tc.ema_decay else None
    progress = Progress(noise=torch.Generator(device=accelerator.device))
    progress.noise.manual_seed(tc.seed * 1000 + accelerator.process_index)
    accelerator.register_for_checkpointing(progress)
    if ema is not None:
        accelerator.register_for_checkpointing(ema)

    start_from = resolve_resume(out, resume)
    if start_from is not None:
        accelerator.load_state(str(start_from))
        if ema is not None:
            ema.to(accelerator.device)
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        save_json(to_dict(config), out / TRAIN_CONFIG_FILE)
        if tc.gradient_accumulation_steps > 1 or accelerator.num_processes > 1:
            effective = tc.batch_size * tc.gradient_accumulation_steps * accelerator.num_processes
            accelerator.print(f"effective batch size {effective} ({accelerator.num_processes} process(es) x "
                              f"{tc.batch_size} x {tc.gradient_accumulation_steps} accumulation); lr {tc.lr} as given")
    rows = _read_loss(out / LOSS_FILE, progress.step) if start_from is not None else []
    first_step = progress.step
    began = time.perf_counter()
    elapsed_before = rows[-1][3] if rows else 0.0
    deadline = began + tc.max_minutes * 60 if tc.max_minutes else math.inf
    bar = tqdm(total=tc.steps, initial=progress.step, desc="train", unit="step",
               disable=not (progress_bar and accelerator.is_main_process))
    loss_value, interrupted = math.nan, False
    with StopRequest() as stop:
        while progress.step < tc.steps and not interrupted:
            pairs.epoch = progress.epoch
            loader.set_epoch(progress.epoch)
            batches = accelerator.skip_first_batches(loader, progress.batch_in_epoch) if progress.batch_in_epoch else loader
            for images, labels in batches:
                with accelerator.accumulate(velocity), accelerator.autocast():
                    loss = pipeline.training_loss(images, labels, velocity=velocity, generator=progress.noise)
                    accelerator.backward(loss)
                    if accelerator.sync_gradients and tc.grad_clip > 0:
                        accelerator.clip_grad_norm_(velocity.parameters(), tc.grad_clip)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                progress.batch_in_epoch += 1
                if not accelerator.sync_gradients:
                    continue
                loss_value = float(accelerator.reduce(loss.detach(), reduction="mean"))
                if not math.isfinite(loss_value):
                    raise FloatingPointError(
                        f"loss is {loss_value} at step {progress.step + 1}; stopped. The last good checkpoint is kept "
                        f"in {out / CHECKPOINTS_DIR} (resume with --resume latest, perhaps with a lower --lr)")
                if ema is not None:
                    ema.step(pipeline.velocity.parameters())
                progress.step += 1
                bar.update(1)
                if progress.step % tc.log_every == 0 or progress.step == tc.steps:
                    lr = scheduler.get_last_lr()[0]
                    rows.append((progress.step, loss_value, lr, elapsed_before + time.perf_counter() - began))
                    bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}")
                    if accelerator.is_main_process:
                        _write_loss(out / LOSS_FILE, rows)
                stopping = stop.signal is not None or time.perf_counter() >= deadline
                if stopping or (tc.checkpoint_every and progress.step % tc.checkpoint_every == 0):
                    _save_checkpoint(accelerator, out, progress, tc.checkpoints_total_limit)
                if stopping:
                    interrupted = stop.signal is not None
                    break
                if progress.step >= tc.steps:
                    break
            else:
                progress.epoch += 1
                progress.batch_in_epoch = 0
                continue
            if progress.step >= tc.steps or time.perf_counter() >= deadline:
                break
    bar.close()
    seconds = time.perf_counter() - began
    accelerator.wait_for_everyone()
    if ema is not None:
        ema.copy_to(pipeline.velocity.parameters())  # the EMA weights are what gets exported and scored
    if accelerator.is_main_process:
        if progress.step and (not rows or rows[-1][0] != progress.step):
            rows.append((progress.step, loss_value, scheduler.get_last_lr()[0], elapsed_before + seconds))
        _write_loss(out / LOSS_FILE, rows)
        pipeline.save_pretrained(out)
    pipeline.eval()
    done = progress.step - first_step
    return pipeline, TrainResult(steps=progress.step, final_loss=loss_value, seconds=seconds,
                                 seconds_per_step=seconds / max(done, 1), interrupted=interrupted)

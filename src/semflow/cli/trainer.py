"""The training loop: HF Accelerate around :meth:`SemFlowPipeline.training_loss`.

Accelerate picks the device(s) and precision, so the same loop runs on a laptop CPU and on GPUs
(``accelerate launch``). The library below knows nothing of it.
"""

from __future__ import annotations

import csv
import io
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from diffusers.optimization import get_cosine_schedule_with_warmup
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from semflow.config import RunConfig, save_json, to_dict
from semflow.data import open_dataset
from semflow.data.base import SegmentationDataset
from semflow.data.transforms import train_transform
from semflow.io import atomic_write_bytes
from semflow.pipeline import SemFlowPipeline

LOSS_FILE = "loss.csv"
TRAIN_CONFIG_FILE = "train_config.json"
CHECKPOINT_DIR = "checkpoint"


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
class TrainResult:
    """What a finished run reports."""

    steps: int
    final_loss: float
    seconds: float
    seconds_per_step: float


def _write_loss(path: Path, rows: list[tuple[int, float, float, float]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["step", "loss", "lr", "elapsed_s"])
    writer.writerows(rows)
    atomic_write_bytes(path, buffer.getvalue().encode())


def train(config: RunConfig, out: Path, dataset: SegmentationDataset | None = None,
          progress: bool = True) -> tuple[SemFlowPipeline, TrainResult]:
    """Train a SemFlow model as ``config`` says and write the model folder to ``out``.

    ``out`` receives the model (``semflow_config.json``, ``network/``, ``codec/``), ``train_config.json``
    (the resolved configuration), ``loss.csv`` and, every ``checkpoint_every`` steps, ``checkpoint/``.
    """
    tc = config.train
    accelerator = Accelerator(mixed_precision=tc.mixed_precision)
    set_seed(tc.seed)
    dataset = dataset if dataset is not None else open_dataset(tc.data, "train")
    pipeline = SemFlowPipeline.from_config(config.model, dataset.info)
    pipeline.codec.requires_grad_(False)
    pipeline.to(accelerator.device)

    pairs = TrainingPairs(dataset, pipeline.size, tc.seed)
    shuffle = torch.Generator().manual_seed(tc.seed)
    loader = DataLoader(pairs, batch_size=tc.batch_size, shuffle=True, drop_last=len(pairs) >= tc.batch_size,
                        num_workers=tc.num_workers, generator=shuffle)
    optimizer = torch.optim.AdamW(pipeline.velocity.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    scheduler = get_cosine_schedule_with_warmup(optimizer, min(tc.warmup_steps, tc.steps // 2), tc.steps)
    velocity, optimizer, loader, scheduler = accelerator.prepare(pipeline.velocity, optimizer, loader, scheduler)
    generator = torch.Generator(device=accelerator.device).manual_seed(tc.seed + accelerator.process_index)

    out = Path(out)
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        save_json(to_dict(config), out / TRAIN_CONFIG_FILE)
    rows: list[tuple[int, float, float, float]] = []
    start = time.perf_counter()
    bar = tqdm(total=tc.steps, desc="train", unit="step", disable=not (progress and accelerator.is_main_process))
    step, loss_value, epoch = 0, math.nan, 0
    deadline = start + tc.max_minutes * 60 if tc.max_minutes else math.inf
    while step < tc.steps and time.perf_counter() < deadline:
        pairs.epoch = epoch
        for images, labels in loader:
            with accelerator.autocast():
                loss = pipeline.training_loss(images, labels, velocity=velocity, generator=generator)
            accelerator.backward(loss)
            if accelerator.sync_gradients and tc.grad_clip > 0:
                accelerator.clip_grad_norm_(velocity.parameters(), tc.grad_clip)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            loss_value = float(loss.detach())
            if not math.isfinite(loss_value):
                raise FloatingPointError(f"loss is {loss_value} at step {step}; stopping (last checkpoint kept)")
            bar.update(1)
            if step % tc.log_every == 0 or step == tc.steps:
                lr = scheduler.get_last_lr()[0]
                rows.append((step, loss_value, lr, time.perf_counter() - start))
                bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}")
                if accelerator.is_main_process:
                    _write_loss(out / LOSS_FILE, rows)
            if tc.checkpoint_every and step % tc.checkpoint_every == 0 and step < tc.steps:
                if accelerator.is_main_process:
                    pipeline.save_pretrained(out / CHECKPOINT_DIR)
            if step >= tc.steps or time.perf_counter() >= deadline:
                break
        epoch += 1
    bar.close()
    seconds = time.perf_counter() - start
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if not rows or rows[-1][0] != step:
            rows.append((step, loss_value, scheduler.get_last_lr()[0], seconds))
        _write_loss(out / LOSS_FILE, rows)
        pipeline.save_pretrained(out)
    pipeline.eval()
    return pipeline, TrainResult(steps=step, final_loss=loss_value, seconds=seconds,
                                 seconds_per_step=seconds / max(step, 1))


def summary(result: TrainResult) -> dict[str, Any]:
    """A JSON-friendly summary of a run."""
    return {"steps": result.steps, "final_loss": result.final_loss, "seconds": result.seconds,
            "seconds_per_step": result.seconds_per_step}

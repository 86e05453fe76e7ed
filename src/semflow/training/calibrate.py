"""How many training steps fit a time budget, from the timing of a few steps of the same model (``semflow demo``)."""

from __future__ import annotations

import time

import torch

from semflow.config import RunConfig
from semflow.data import open_dataset
from semflow.models.base import Segmenter, TrainingTime

# Points of training timed: a method's step may cost more in some phases (SemFlow's self-aligned last part).
POINTS = 8


def calibrate_steps(config: RunConfig, budget_seconds: float, planned_steps: int = 1000) -> int:
    """Training steps (at least 20) that fit ``budget_seconds``: the mean cost of a step over :data:`POINTS` evenly
    spaced points of a ``planned_steps``-step run (each the faster of two timed steps, after one warm-up), plus 10%
    for data loading and logging."""
    dataset = open_dataset(config.train.data, "train")
    pipe = Segmenter.from_config(config.model, dataset.info)
    opt = torch.optim.AdamW(pipe.trainable.parameters(), lr=1e-4)
    batch = [dataset[i] for i in range(config.train.batch_size)]
    images = torch.stack([b["image"] for b in batch]).float() / 255
    labels = torch.stack([b["label"] for b in batch])

    def seconds(at: TrainingTime) -> float:
        start = time.perf_counter()
        pipe.training_loss(images, labels, at=at).backward()
        opt.step()
        opt.zero_grad()
        return time.perf_counter() - start

    seconds(TrainingTime(0, planned_steps))  # the first call pays one-off costs
    points = [TrainingTime(int((i + 0.5) * planned_steps / POINTS), planned_steps) for i in range(POINTS)]
    per_step = sum(min(seconds(at), seconds(at)) for at in points) / POINTS * 1.1
    return max(20, int(budget_seconds / per_step))

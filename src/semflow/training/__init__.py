"""Training: the Accelerate loop and what only training needs. It imports the library; the library never
imports it.

* :mod:`~semflow.training.loop`: :func:`train` = :func:`setup`, :func:`train_step` per micro-batch, :func:`finish`.
* :mod:`~semflow.training.checkpoint`: resumable checkpoints (save, list, resume) and the run's :class:`Progress`.
* :mod:`~semflow.training.data`: the augmented training pairs; :mod:`~semflow.training.latents`: the exact
  latent cache (each image's posterior, encoded once).
* :mod:`~semflow.training.launcher`: what ``accelerate launch`` / ``torchrun`` set up, checked.
* :mod:`~semflow.training.history`: ``loss.csv``.

Names are imported lazily (``semflow.training.data`` does not load Accelerate).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "train": "loop", "setup": "loop", "train_step": "loop", "finish": "loop", "Run": "loop", "TrainResult": "loop",
    "StopRequest": "loop", "check_in_sync": "loop", "TRAIN_CONFIG_FILE": "loop",
    "BAD_FILES": "loop", "report_bad_files": "loop",
    "Progress": "checkpoint", "list_checkpoints": "checkpoint", "resolve_resume": "checkpoint",
    "save_checkpoint": "checkpoint", "CHECKPOINTS_DIR": "checkpoint",
    "TrainingPairs": "data", "CachedPairs": "data",
    "PosteriorCache": "latents", "build_posterior_cache": "latents",
    "launched_processes": "launcher", "multiprocess_without_accelerator": "launcher",
    "resolve_precision": "launcher", "make_accelerator": "launcher",
    "LOSS_FILE": "history",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"semflow.training.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'semflow.training' has no attribute {name!r}")

"""Per-pixel classification losses shared by several models (the discriminative baseline, SemFlow's class head).

Logits are ``(B, K, h, w)`` at any resolution; they are resized bilinearly to the labels' ``(H, W)``. The ignore
label is skipped. Nothing here knows a model, a flow or a configuration.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def logits_at(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Logits ``(B, K, h, w)`` bilinearly resized to ``size`` ``(H, W)``, as float."""
    logits = logits.float()
    if tuple(logits.shape[-2:]) != tuple(size):
        logits = F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)
    return logits


def cross_entropy_loss(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int | None = None) -> torch.Tensor:
    """Mean cross-entropy of ``logits`` ``(B, K, h, w)`` (resized to the labels) against ``labels`` ``(B, H, W)``,
    skipping ``ignore_index``; ``0`` (with a gradient path) where nothing is labelled."""
    ignore = -100 if ignore_index is None else ignore_index
    if not bool((labels != ignore).any()):
        return logits.float().sum() * 0.0
    return F.cross_entropy(logits_at(logits, tuple(labels.shape[-2:])), labels.to(logits.device).long(),
                           ignore_index=ignore)


def labels_from_logits(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Class maps ``(B, H, W)`` (long): the argmax of logits ``(B, K, h, w)`` resized to ``size``."""
    return logits_at(logits, size).argmax(1)

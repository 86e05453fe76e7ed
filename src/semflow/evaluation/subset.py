"""Which images of a split to score when not all of them: evenly spaced, so a subset spans the whole split."""

from __future__ import annotations

import torch


def evenly_spaced_indices(count: int, wanted: int) -> list[int] | None:
    """``wanted`` evenly spaced indices of ``range(count)``, first and last included (``None``: all of them,
    when ``wanted <= 0`` or ``wanted >= count``)."""
    if wanted <= 0 or wanted >= count:
        return None
    return sorted(set(torch.linspace(0, count - 1, wanted).round().long().tolist()))

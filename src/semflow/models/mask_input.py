"""The mask as a network input: one channel per class, as conditional synthesizers (SPADE, SDM, ControlNet) take it.

SemFlow draws a mask as a pseudo-mask image (palette colours) and flows it to the image; the synthesis rivals
(:mod:`semflow.models.noise_flow`, :mod:`semflow.models.spade`) are fed the classes themselves instead.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from semflow.errors import SemflowInputError


def one_hot_mask(labels: torch.Tensor, num_classes: int, ignore_index: int | None, factor: int = 1) -> torch.Tensor:
    """Class maps as class fractions per cell of a grid ``factor`` times coarser.

    Args:
        labels: integer ``(B, h, w)``, values in ``0..K-1`` or ``ignore_index``; ``h`` and ``w`` multiples of
            ``factor``.
        num_classes: ``K``.
        ignore_index: the label of unlabelled pixels (all channels 0 there), or ``None``.
        factor: the codec's downsampling (1 in pixel space): each output cell is the share of each class among
            its ``factor x factor`` pixels.

    Returns:
        float32 ``(B, K, h / factor, w / factor)`` in ``[0, 1]``, on ``labels``' device (channels sum to 1 where no
        pixel is ignored; a pixel-space one-hot at ``factor = 1``).

    Raises:
        SemflowInputError: a label that is neither a class nor the ignore index.
    """
    labels = labels.long()
    ignored = labels == ignore_index if ignore_index is not None else torch.zeros_like(labels, dtype=torch.bool)
    bad = ~ignored & ((labels < 0) | (labels >= num_classes))
    if bool(bad.any()):
        value = int(labels[bad][0])
        allowed = f"0..{num_classes - 1}" + (f" or the ignore index {ignore_index}" if ignore_index is not None else "")
        raise SemflowInputError(f"mask label {value} is not a class of this model; expected {allowed}")
    onehot = F.one_hot(torch.where(ignored, 0, labels), num_classes).permute(0, 3, 1, 2).float()
    onehot = onehot * (~ignored)[:, None].float()
    return F.avg_pool2d(onehot, factor) if factor > 1 else onehot

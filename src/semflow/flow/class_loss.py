"""A class-aware loss on the mask a prediction implies.

The flow's MSE treats a pseudo-mask as colours: where the network is unsure between two classes it is paid
to predict the mean of their colours, which decodes to a third class or to the wrong one. This loss reads
the predicted mask as a classifier would: logits ``-|x - c_k|^2 / tau`` for every palette colour ``c_k``
(the nearest colour has the largest logit, so its argmax is exactly the nearest-colour decoding), and a
cross-entropy against the true labels (Semantic Prism's colour-space logits).
"""

from __future__ import annotations

import torch

from semflow.flow.class_head import head_loss


def palette_logits(colors: torch.Tensor, palette_colors: torch.Tensor, tau: float) -> torch.Tensor:
    """Logits ``-|x - c_k|^2 / tau``.

    Args:
        colors: predicted pseudo-masks ``(B, 3, H, W)`` in ``[0, 1]`` units.
        palette_colors: class colours ``(C, 3)`` in the same units.
        tau: temperature (squared colour units), ``> 0``.

    Returns:
        ``(B, C, H, W)`` logits.
    """
    x = colors.movedim(1, -1).unsqueeze(-2)  # (B, H, W, 1, 3)
    squared = ((x - palette_colors.to(colors)) ** 2).sum(-1)  # (B, H, W, C)
    return (-squared / tau).movedim(-1, 1)


def class_loss(colors: torch.Tensor, labels: torch.Tensor, palette_colors: torch.Tensor, tau: float,
               ignore_index: int | None = None) -> torch.Tensor:
    """Mean cross-entropy of :func:`palette_logits` against ``labels`` ``(B, H, W)``, skipping ``ignore_index``
    (the class head's loss, :func:`semflow.flow.class_head.head_loss`, on colour-space logits)."""
    return head_loss(palette_logits(colors.float(), palette_colors.float(), tau), labels, ignore_index)

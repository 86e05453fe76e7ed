"""A class head: ``K`` logits of the mask end, read from the same network call as the velocity.

The paper reads a segmentation off the flow's final mask: each pixel's nearest palette colour. Three colour
channels are a narrow output for ``K`` classes: a flow trained only at ``t = 0`` is a colour regressor that scores
well under a classifier of the same network (docs/quality.md). With ``model.readout=head`` the network gets ``K``
more output channels: at every call, besides the velocity, the class logits of the mask end the path leads to,
trained by cross-entropy at every training state. The flow is unchanged (the same states, path, velocity loss
and synthesis); only the readout of a segmentation changes:

* the classes are the argmax of the class probabilities averaged over the solve's calls so far (one Euler step:
  the logits at ``t = 0``): each call reads the mask end from another state, and their mean is an ensemble along
  the trajectory (:class:`HeadMean`);
* the ``snap`` solver projects each predicted end onto the palette colours of the classes read at that call
  instead of each colour's nearest palette colour, so every state still mixes the image with a clean pseudo-mask,
  and the final state's mask decodes to the classes read.
"""

from __future__ import annotations

import torch

from semflow.losses import labels_from_logits


class HeadMean:
    """The class probabilities of a solve's calls, summed (``total`` ``(B, K, h, w)`` float): their mean's argmax
    is a segmentation's classes. The caller adds each call's logits and reads the classes; nothing else does."""

    def __init__(self) -> None:
        self.total: torch.Tensor | None = None

    def add(self, logits: torch.Tensor) -> None:
        """Add one call's logits ``(B, K, h, w)``."""
        p = logits.float().softmax(1)
        self.total = p if self.total is None else self.total + p

    def labels(self, size: tuple[int, int]) -> torch.Tensor:
        """The classes ``(B, H, W)`` at ``size`` of the calls' mean class probabilities (their sum's argmax)."""
        if self.total is None:
            raise RuntimeError("no call added yet")
        return labels_from_logits(self.total, size)

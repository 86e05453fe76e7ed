"""A class head: ``K`` logits of the mask end, read from the same network call as the velocity.

The paper reads a segmentation off the flow's final mask: each pixel's nearest palette colour. Three colour
channels are a narrow output for ``K`` classes: a flow trained only at ``t = 0`` is a colour regressor that scores
well under a classifier of the same network (docs/quality.md). With ``model.readout=head`` the network gets ``K``
more output channels: at every call, besides the velocity, the class logits of the mask end the path leads to,
trained by cross-entropy at every training state. The flow is unchanged (the same states, path, velocity loss
and synthesis); only the readout of a segmentation changes:

* the classes are the argmax of the class probabilities averaged over the solve's calls so far (one Euler step:
  the logits at ``t = 0``): each call reads the mask end from another state, and their mean is an ensemble along
  the trajectory (CamVid, the bench's model: 34.5 at one step, 34.7 at 25 with ``snap``, against 34.4 for the
  last call alone: docs/quality.md);
* the ``snap`` solver projects each predicted end onto the palette colours of those classes instead of each
  colour's nearest palette colour, so every state still mixes the image with a clean pseudo-mask, and the final
  state's mask decodes to the classes read.
"""

from __future__ import annotations

import torch

from semflow.flow.velocity import VelocityModel
from semflow.losses import labels_from_logits


class HeadReader:
    """``v(z, t)`` for a solver that keeps the sum of every call's class probabilities (``probabilities``,
    ``(B, K, h, w)`` float), which :meth:`labels` reads.

    Args:
        velocity: a :class:`VelocityModel` with a head.
        condition: the extra input of every call (``model.condition=known-end``), or ``None``.
    """

    def __init__(self, velocity: VelocityModel, condition: torch.Tensor | None = None) -> None:
        if not velocity.head_channels:
            raise ValueError("HeadReader needs a velocity model with a class head (head_channels > 0)")
        self.velocity = velocity
        self.condition = condition
        self.probabilities: torch.Tensor | None = None

    def __call__(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        ends = self.velocity.endpoints(z, t, self.condition)
        p = ends.logits.float().softmax(1)
        self.probabilities = p if self.probabilities is None else self.probabilities + p
        return ends.velocity

    def labels(self, size: tuple[int, int]) -> torch.Tensor:
        """The classes ``(B, H, W)`` at ``size`` of the calls' mean class probabilities (their sum's argmax)."""
        if self.probabilities is None:
            raise RuntimeError("no call yet: the solver has not evaluated the field")
        return labels_from_logits(self.probabilities, size)

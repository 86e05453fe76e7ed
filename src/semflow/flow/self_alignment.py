"""Training states from the model's own solves ("self-aligned" training, after DDP, ICCV 2023).

A solve of ``N`` Euler steps visits states the straight path never shows the network: after ``k`` steps from
``z0`` it stands at ``z0 + sum_i h v(...)``, not at ``(1 - t) z0 + t z1``. Here a batch is carried ``k`` steps
(``1 <= k < N``, drawn once per batch) by the model itself, without gradients, half of it from the image end
towards the mask, half from the mask end towards the image, and the network is then trained at the states
reached with targets that point from them to the true far end. The near end of each target is the point that
puts the state on a straight line to that far end, so the velocity target is ``(z1 - z_t) / (1 - t)`` on the
segmentation half and ``(z_t - z0) / t`` on the synthesis half: one field, corrected in both directions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class AlignedSample:
    """States ``z_t`` ``(B, C, h, w)`` at times ``t`` ``(B,)`` and the path ends ``z0``, ``z1`` they are trained
    towards (``z_t = (1 - t) z0 + t z1`` holds exactly)."""

    t: torch.Tensor
    z_t: torch.Tensor
    z0: torch.Tensor
    z1: torch.Tensor


@torch.no_grad()
def self_aligned_sample(velocity: Velocity, z0: torch.Tensor, z1: torch.Tensor, steps: int,
                        generator: torch.Generator | None = None) -> AlignedSample:
    """Carry the first half of the batch from ``z0`` and the rest from ``z1`` ``k`` Euler steps of ``1/steps``.

    Args:
        velocity: ``v(z, t)``.
        z0, z1: the true ends ``(B, C, h, w)``.
        steps: ``N >= 2``, the solve whose states are imitated; ``k`` is drawn from ``1..N-1``.
        generator: random source for ``k`` (on ``z0``'s device).
    """
    batch, device = z0.shape[0], z0.device
    k = int(torch.randint(1, steps, (1,), generator=generator, device=device))
    h = 1.0 / steps
    half = batch // 2  # [0, half): segmentation direction; [half, B): synthesis direction
    forward, backward = z0[:half], z1[half:]
    for i in range(k):  # (a batch of one has no segmentation half: networks may refuse empty batches)
        if half:
            forward = forward + h * velocity(forward, torch.full((half,), i * h, device=device))
        backward = backward - h * velocity(backward, torch.full((batch - half,), 1 - i * h, device=device))
    t_seg, t_syn = k * h, 1 - k * h
    t = torch.cat([torch.full((half,), t_seg, device=device), torch.full((batch - half,), t_syn, device=device)])
    ends0 = torch.cat([(forward - t_seg * z1[:half]) / (1 - t_seg), z0[half:]])
    ends1 = torch.cat([z1[:half], (backward - (1 - t_syn) * z0[half:]) / t_syn])
    return AlignedSample(t=t, z_t=torch.cat([forward, backward]), z0=ends0, z1=ends1)

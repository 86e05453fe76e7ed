"""The rectified-flow path between images (t = 0) and masks (t = 1).

``z_t = (1 - t) z0 + t z1`` with constant velocity ``dz_t/dt = z1 - z0``; the network regresses that velocity
with an MSE loss at ``t ~ U(0, 1)``. ``z0`` is always the image side and ``z1`` the mask side.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class PathSample:
    """A point on the path: ``t`` ``(B,)``, ``z_t`` and the velocity target ``dz_t`` ``(B, C, h, w)``."""

    t: torch.Tensor
    z_t: torch.Tensor
    dz_t: torch.Tensor


def sample_path(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> PathSample:
    """Interpolate ``z_t = (1 - t) z0 + t z1``; the target velocity is ``z1 - z0``.

    Args:
        z0: image latents ``(B, C, h, w)``.
        z1: mask latents, same shape.
        t: times ``(B,)`` in ``[0, 1]``.
    """
    tb = t.view(-1, *([1] * (z0.dim() - 1))).to(z0.dtype)
    return PathSample(t=t, z_t=(1 - tb) * z0 + tb * z1, dz_t=z1 - z0)


def sample_time(batch: int, device: torch.device, generator: torch.Generator | None = None, t0_mass: float = 0.0,
                t1_mass: float = 0.0) -> torch.Tensor:
    """Training times, shape ``(batch,)`` in ``[0, 1]``: ``t = 0`` with probability ``t0_mass``, ``t = 1`` with
    ``t1_mass``, else ``U(0, 1)``. Without end masses, the paper's single draw of ``U(0, 1)``."""
    u = torch.rand(batch, device=device, generator=generator)
    if not (t0_mass or t1_mass):
        return u
    choice = torch.rand(batch, device=device, generator=generator)
    t = torch.where(choice < t0_mass, torch.zeros_like(u), u)
    return torch.where((choice >= t0_mass) & (choice < t0_mass + t1_mass), torch.ones_like(u), t)


def flow_matching_loss(prediction: torch.Tensor, path: PathSample) -> torch.Tensor:
    """Mean squared error between the predicted and the target velocity (a scalar)."""
    return torch.mean((prediction.float() - path.dz_t.float()) ** 2)

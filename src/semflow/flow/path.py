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


def sample_time(batch: int, device: torch.device, generator: torch.Generator | None = None, kind: str = "uniform",
                t0_mass: float = 0.0, t1_mass: float = 0.0, t0_width: float = 0.0, t1_width: float = 0.0,
                mean: float = 0.0, std: float = 1.0) -> torch.Tensor:
    """Training times, shape ``(batch,)`` in ``[0, 1]``, drawn as ``kind`` says (default: the paper's ``U(0, 1)``).

    * ``uniform``: ``U(0, 1)`` (one draw of ``batch`` numbers, as the paper's recipe always did).
    * ``endpoints``: ``t = 0`` with probability ``t0_mass``, ``t = 1`` with ``t1_mass``, else ``U(0, 1)``; with a
      ``t0_width`` (``t1_width``) the first mass is spread as ``U(0, t0_width)`` (the second as ``U(1 - t1_width, 1)``).
    * ``logit-normal``: ``sigmoid(mean + std * N(0, 1))``.
    """
    u = torch.rand(batch, device=device, generator=generator)
    if kind == "uniform":
        return u
    if kind == "logit-normal":
        n = torch.randn(batch, device=device, generator=generator)
        return torch.sigmoid(mean + std * n)
    if kind != "endpoints":
        raise ValueError(f"time sampling {kind!r}; expected uniform, endpoints or logit-normal")
    choice = torch.rand(batch, device=device, generator=generator)
    if t0_width or t1_width:  # one more draw only where a band asks for it
        band = torch.rand(batch, device=device, generator=generator)
        start, end = t0_width * band, 1 - t1_width * band
    else:
        start, end = torch.zeros_like(u), torch.ones_like(u)
    t = torch.where(choice < t0_mass, start, u)
    return torch.where((choice >= t0_mass) & (choice < t0_mass + t1_mass), end, t)


def flow_matching_loss(prediction: torch.Tensor, path: PathSample) -> torch.Tensor:
    """Mean squared error between the predicted and the target velocity (a scalar)."""
    return torch.mean((prediction.float() - path.dz_t.float()) ** 2)

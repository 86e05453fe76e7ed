"""The velocity field ``v(z_t, t)``: a network plus the one place where time is converted.

SemFlow's time ``t`` runs from 0 (image) to 1 (mask). The network is given ``time_scale * t`` as its
timestep (``time_scale = 1000``), the convention of diffusers' UNets and of the authors' checkpoints.
This module is the only place that conversion happens.
"""

from __future__ import annotations

import torch
from torch import nn

DEFAULT_TIME_SCALE = 1000.0


def network_timestep(t: torch.Tensor, time_scale: float = DEFAULT_TIME_SCALE) -> torch.Tensor:
    """SemFlow time ``t`` in ``[0, 1]`` to the network's timestep ``time_scale * t``."""
    return t * time_scale


class VelocityModel(nn.Module):
    """Wraps a backbone ``net(sample, timestep)`` as ``v(z, t)``.

    Any module with diffusers' ``(sample, timestep)`` call signature plugs in; it may return a tensor or
    an object with a ``.sample`` tensor (diffusers' output classes).

    Args:
        network: the backbone.
        time_scale: factor from ``t`` to the network's timestep.
    """

    def __init__(self, network: nn.Module, time_scale: float = DEFAULT_TIME_SCALE) -> None:
        super().__init__()
        self.network = network
        self.time_scale = time_scale

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``z``: ``(B, C, h, w)``; ``t``: ``(B,)`` in ``[0, 1]``. Returns ``dz/dt``, shaped like ``z``."""
        out = self.network(z, network_timestep(t, self.time_scale))
        return out.sample if hasattr(out, "sample") else out

"""The velocity field ``v(z_t, t)``: a network plus the one place where time is converted.

SemFlow's time ``t`` runs from 0 (image) to 1 (mask). The network is given ``time_scale * t`` as its
timestep (``time_scale = 1000``), the convention of diffusers' UNets and of the authors' checkpoints.
This module is the only place that conversion happens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

DEFAULT_TIME_SCALE = 1000.0


def network_timestep(t: torch.Tensor, time_scale: float = DEFAULT_TIME_SCALE) -> torch.Tensor:
    """SemFlow time ``t`` in ``[0, 1]`` to the network's timestep ``time_scale * t``."""
    return t * time_scale


@dataclass
class Endpoints:
    """What a prediction at ``(z_t, t)`` says of the whole path: the image end ``z0``, the mask end ``z1`` and the
    velocity ``z1 - z0``, each ``(B, C, h, w)``; with a class head, the mask end's class ``logits``
    ``(B, K, h, w)`` (else ``None``)."""

    z0: torch.Tensor
    z1: torch.Tensor
    velocity: torch.Tensor
    logits: torch.Tensor | None = None


class VelocityModel(nn.Module):
    """Wraps a backbone ``net(sample, timestep)`` as ``v(z, t)``.

    Any module with diffusers' ``(sample, timestep)`` call signature plugs in; it may return a tensor or
    an object with a ``.sample`` tensor (diffusers' output classes).

    Args:
        network: the backbone.
        time_scale: factor from ``t`` to the network's timestep.
        parameterization: ``velocity`` (the paper: the network outputs ``v``, ``C`` channels) or ``endpoints``
            (it outputs both ends ``[z0_hat, z1_hat]``, ``2C`` channels, and ``v = z1_hat - z0_hat``). On the
            straight path ``z_t = (1 - t) z0 + t z1`` both say the same thing; they differ in what the network
            is asked to regress, and so in how its errors are weighted over ``t``.
        head_channels: ``K > 0``: the network's last ``K`` output channels are class logits of the mask end (a
            class head, ``model.readout=head``); the flow's channels come first.
    """

    def __init__(self, network: nn.Module, time_scale: float = DEFAULT_TIME_SCALE,
                 parameterization: str = "velocity", head_channels: int = 0) -> None:
        super().__init__()
        self.network = network
        self.time_scale = time_scale
        self.parameterization = parameterization
        self.head_channels = head_channels

    def _output(self, z: torch.Tensor, t: torch.Tensor, condition: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The network's flow output and its class logits (``None`` without a head), from one call."""
        x = z if condition is None else torch.cat([z, condition.to(z.dtype)], dim=1)
        out = self.network(x, network_timestep(t, self.time_scale))
        out = out.sample if hasattr(out, "sample") else out
        if not self.head_channels:
            return out, None
        return out[:, :-self.head_channels], out[:, -self.head_channels:]

    def endpoints(self, z: torch.Tensor, t: torch.Tensor, condition: torch.Tensor | None = None) -> Endpoints:
        """Both ends and the velocity the network predicts at ``z`` ``(B, C, h, w)``, ``t`` ``(B,)`` (and the class
        logits of a head). For the ``velocity`` parameterization the ends are the ones it implies: ``z - t v`` and
        ``z + (1 - t) v``. ``condition`` ``(B, C', h, w)``, if any, is stacked onto ``z``'s channels as the
        network's input."""
        out, logits = self._output(z, t, condition)
        if self.parameterization == "endpoints":
            z0, z1 = out.chunk(2, dim=1)
            return Endpoints(z0=z0, z1=z1, velocity=z1 - z0, logits=logits)
        tb = t.view(-1, *([1] * (z.dim() - 1))).to(out.dtype)
        return Endpoints(z0=z - tb * out, z1=z + (1 - tb) * out, velocity=out, logits=logits)

    def forward(self, z: torch.Tensor, t: torch.Tensor, ends: bool = False, condition: torch.Tensor | None = None
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``z``: ``(B, C, h, w)``; ``t``: ``(B,)`` in ``[0, 1]``. Returns ``dz/dt``, shaped like ``z``; with
        ``ends``, the tuple ``(z0, z1, velocity, logits)`` of :meth:`endpoints` (through ``forward``, so that a
        distributed wrapper sees the call and synchronises its gradients). ``condition``: extra input channels."""
        if ends:
            e = self.endpoints(z, t, condition)
            return e.z0, e.z1, e.velocity, e.logits
        if self.parameterization == "endpoints":
            return self.endpoints(z, t, condition).velocity
        return self._output(z, t, condition)[0]

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
class Prediction:
    """What one network call at ``(z_t, t)`` says of the path: the ``velocity`` and the ends it implies on the
    straight line through ``z_t``, ``z0 = z_t - t v`` and ``z1 = z_t + (1 - t) v``, each ``(B, C, h, w)``; with a
    class head, the mask end's class ``logits`` ``(B, K, h, w)`` (else ``None``)."""

    velocity: torch.Tensor
    z0: torch.Tensor
    z1: torch.Tensor
    logits: torch.Tensor | None = None


class VelocityModel(nn.Module):
    """Wraps a backbone ``net(sample, timestep)`` as ``v(z, t)``.

    Any module with diffusers' ``(sample, timestep)`` call signature plugs in; it may return a tensor or
    an object with a ``.sample`` tensor (diffusers' output classes).

    Args:
        network: the backbone.
        time_scale: factor from ``t`` to the network's timestep.
        head_channels: ``K > 0``: the network's last ``K`` output channels are class logits of the mask end (a
            class head, ``model.readout=head``); the velocity's channels come first.
    """

    def __init__(self, network: nn.Module, time_scale: float = DEFAULT_TIME_SCALE, head_channels: int = 0) -> None:
        super().__init__()
        self.network = network
        self.time_scale = time_scale
        self.head_channels = head_channels

    def _output(self, z: torch.Tensor, t: torch.Tensor, condition: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The velocity and the class logits (``None`` without a head), from one network call; ``condition``
        ``(B, C', h, w)``, if any, is stacked onto ``z``'s channels as the network's input."""
        x = z if condition is None else torch.cat([z, condition.to(z.dtype)], dim=1)
        out = self.network(x, network_timestep(t, self.time_scale))
        out = out.sample if hasattr(out, "sample") else out
        if not self.head_channels:
            return out, None
        return out[:, :-self.head_channels], out[:, -self.head_channels:]

    def predict(self, z: torch.Tensor, t: torch.Tensor, condition: torch.Tensor | None = None) -> Prediction:
        """The :class:`Prediction` at ``z`` ``(B, C, h, w)``, ``t`` ``(B,)``: one network call (``condition``: extra
        input channels, as a conditional field takes them)."""
        v, logits = self._output(z, t, condition)
        tb = t.view(-1, *([1] * (z.dim() - 1))).to(v.dtype)
        return Prediction(velocity=v, z0=z - tb * v, z1=z + (1 - tb) * v, logits=logits)

    def forward(self, z: torch.Tensor, t: torch.Tensor, full: bool = False, condition: torch.Tensor | None = None
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``z``: ``(B, C, h, w)``; ``t``: ``(B,)`` in ``[0, 1]``. Returns ``dz/dt``, shaped like ``z``; with
        ``full``, the tuple ``(velocity, z0, z1, logits)`` of :meth:`predict` (through ``forward``, so that a
        distributed wrapper sees the call and synchronises its gradients). ``condition``: extra input channels."""
        if full:
            p = self.predict(z, t, condition)
            return p.velocity, p.z0, p.z1, p.logits
        return self._output(z, t, condition)[0]

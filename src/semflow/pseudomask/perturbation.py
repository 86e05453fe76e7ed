"""Finite perturbation of pseudo-masks.

SemFlow adds uniform noise ``U(-beta, beta)`` to every pixel and channel of the pseudo-mask before encoding
it. With ``0 < beta < s/2`` a perturbed colour stays nearer its own palette colour than any other, so the
label never changes, while the mask end of the flow becomes a distribution: synthesis becomes one-to-many.

``beta`` is in pixel levels (``0..255`` scale). In the ``[0, 1]`` range codecs take it is ``beta / 255``;
in the pixel codec's ``[-1, 1]`` latent it is ``2 * beta / 255``.
"""

from __future__ import annotations

import torch

from semflow.errors import SemflowInputError

# The authors' release adds 0.1 * U(-0.5, 0.5) in [-1, 1] units to the pseudo-mask: beta = 0.05 * 127.5
# = 6.375 pixel levels, whatever the palette. Small is also what segmentation wants: the perturbation is
# part of z_t in training but absent from the states an ODE solve visits, so a large beta shifts them.
AUTHORS_BETA = 6.375


def check_beta(beta: float, s: float) -> None:
    """Raise unless ``0 < beta < s / 2`` (both in pixel levels)."""
    if not 0.0 < beta < s / 2:
        raise SemflowInputError(
            f"perturbation beta={beta} pixel levels; expected 0 < beta < s/2 = {s / 2} so that labels never change"
        )


def perturb(pseudo_mask: torch.Tensor, beta: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Add ``U(-beta, beta)`` to every pixel and channel.

    Args:
        pseudo_mask: ``(..., 3, H, W)`` float, pixel levels ``[0, 255]``.
        beta: amplitude in pixel levels: no pixel moves by more than ``beta`` in any channel.
        generator: random source (``None``: torch's global one).

    Returns:
        Tensor of the same shape, pixel levels (not clipped to ``[0, 255]``: that would skew the noise at the
        extremes).
    """
    noise = torch.rand(pseudo_mask.shape, generator=generator, device=pseudo_mask.device, dtype=pseudo_mask.dtype)
    return pseudo_mask + (2.0 * noise - 1.0) * beta

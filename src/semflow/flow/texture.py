"""The synthesis ``eta`` whose samples carry the real images' texture, chosen once after training.

Stochastic synthesis (:class:`~semflow.flow.solver.RenoisedSource`) redraws a share ``eta`` of the image part's
noise at every step. How much texture that leaves depends on the data and on how well the field has learnt to
turn noise into texture: on the built-in shapes (pixel noise and stripes that class colours lack) ``eta = 1``
leaves the samples smoother than the real images and ``eta = 0.5`` about as textured; on CamVid at 48x64 every
``eta`` leaves them grainier than the photos and ``eta = 1`` the least grainy (docs/synthesis.md, "The texture
matched after training"). So the dial is measured, not fixed: synthesize a few training masks at each candidate
``eta`` (the same perturbations and colours for each, so that only ``eta`` differs) and keep the one whose samples'
mean absolute Laplacian is closest, in ratio, to that of the masks' own training images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from semflow.errors import SemflowInputError
from semflow.evaluation.laplacian import laplacian_energy

#: The candidates, from the ODE to all the noise redrawn at every step.
ETAS = (0.0, 0.25, 0.5, 0.75, 1.0)
#: Training masks synthesized (evenly spaced over the split) and samples per mask, at the default synthesis steps.
MASKS, SAMPLES, STEPS = 16, 1, 25


@dataclass(frozen=True)
class TextureMatch:
    """The samples' high-frequency energy over the real images' (``ratios``, one per candidate of ``etas``) and the
    ``eta`` kept: the one with the ratio closest to 1 in ``|log ratio|`` (on a tie, the larger ``eta``)."""

    etas: tuple[float, ...]
    ratios: tuple[float, ...]
    eta: float

    def line(self) -> str:
        """One line for the training log."""
        table = ", ".join(f"{e:g}: {r:.2f}" for e, r in zip(self.etas, self.ratios))
        return (f"synthesis eta {self.eta:g} matches the training images' texture (samples' high-frequency energy "
                f"over the real images', by eta: {table}); model.match_texture=false keeps model.synthesis_eta")


def match_texture(synthesize: Callable[[float], torch.Tensor], real: torch.Tensor,
                  etas: Sequence[float] = ETAS) -> TextureMatch:
    """The ``eta`` among ``etas`` whose samples' mean absolute Laplacian is closest, in ratio, to ``real``'s.

    Args:
        synthesize: ``eta -> (N, 3, h, w)`` samples in ``[0, 1]`` of some masks (called once per candidate; give
            every call the same seeds, so that only ``eta`` differs).
        real: ``(M, 3, h, w)`` the masks' real images in ``[0, 1]``, at the samples' size.
        etas: candidates in ``[0, 1]``, at least one.
    """
    if not etas:
        raise SemflowInputError("no eta to choose from; expected at least one in [0, 1]")
    reference = float(laplacian_energy(real).mean())
    if not reference > 0:
        raise SemflowInputError("the training images have no high-frequency energy (all flat): there is no texture "
                                "to match; set model.match_texture=false")
    ratios = tuple(float(laplacian_energy(synthesize(float(eta))).mean()) / reference for eta in etas)
    # Closest to the real energy on a log scale (twice as grainy is as far as half as textured); on a tie the larger
    # eta, whose samples are the more faithful.
    best = min(range(len(etas)), key=lambda i: (abs(math.log(max(ratios[i], 1e-12))), -etas[i]))
    return TextureMatch(etas=tuple(float(e) for e in etas), ratios=ratios, eta=float(etas[best]))

"""High-frequency energy of images: the mean absolute Laplacian, per image, in pixel space.

A flat field of colour has none; pixel noise, stripes and edges have much. Comparing the samples synthesized from
some masks with the real images of the same masks (:func:`energy_ratio`) says whether the samples carry the real
images' texture or regress to a flat, blurred mean: a deterministic flow from a flat source tends to the latter.

The Laplacian is the 5-point stencil ``z[y-1, x] + z[y+1, x] + z[y, x-1] + z[y, x+1] - 4 z[y, x]``, taken per channel
on the interior pixels (no padding: a border adds no artificial edge), its absolute value averaged over channels
and pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from semflow.errors import SemflowInputError

_STENCIL = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def laplacian_energy(images: torch.Tensor) -> torch.Tensor:
    """Mean absolute Laplacian of each image.

    Args:
        images: ``(N, C, H, W)`` float, ``H, W >= 3``, in any units (``[0, 1]`` for the synthesis scores).

    Returns:
        ``(N,)`` float32 in the images' units per pixel: 0 for a constant or linear image, ``8 a`` for a
        checkerboard of ``+a`` and ``-a``.
    """
    if images.dim() != 4 or min(images.shape[-2:]) < 3:
        raise SemflowInputError(f"images of shape {tuple(images.shape)}; expected (N, C, H, W) with H, W >= 3")
    x = images.float()
    channels = x.shape[1]
    kernel = _STENCIL.to(x.device).expand(channels, 1, 3, 3)
    return F.conv2d(x, kernel, groups=channels).abs().flatten(1).mean(dim=1)


def energy_ratio(samples: torch.Tensor, real: torch.Tensor) -> float:
    """Mean Laplacian energy of ``samples`` over that of ``real`` images (of the same masks, the same size):
    1 where the samples are as textured as the real images, near 0 for flat ones. Both ``(N, C, H, W)``."""
    reference = float(laplacian_energy(real).mean())
    if reference <= 0:
        raise SemflowInputError("the real images have no Laplacian energy (all flat); the ratio is undefined")
    return float(laplacian_energy(samples).mean()) / reference

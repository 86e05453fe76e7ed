"""Where the image and the mask live in the flow's state.

* ``shared`` (the paper): ``z0 = E(image)`` and ``z1 = E(mask)`` are points of one latent space, and
  ``z_t = (1 - t) z0 + t z1`` mixes them in the same channels.
* ``stacked``: the state has both latents side by side in separate channels, ``[image part, mask part]``:
  ``z0 = [E(image), fill]`` and ``z1 = [fill', E(mask)]``, where a fill is zeros or Gaussian noise of standard
  deviation ``noise``. ``z_t = [(1 - t) E(image) + t fill', (1 - t) fill + t E(mask)]`` then shows the image part
  undisturbed by the mask part, so two training paths cross only where their images (or masks) meet, not where
  an image happens to look like another image's mask. In a small latent (pixel space, 3 channels) such crossings
  are everywhere: the velocity there averages the two paths, and an ODE solve of many steps follows the average,
  where one Euler step from ``t = 0`` does not (see docs/quality.md). With ``noise > 0`` each end carries fresh
  randomness where the other end has its data, which gives synthesis a source of variety besides the
  pseudo-mask perturbation (as SymmFlow does).

The image part at the mask end, where synthesis starts, is the fill or a painting of the mask
(:mod:`semflow.flow.class_means`), as the model's ``image_source`` says.
"""

from __future__ import annotations

import torch


class StateLayout:
    """How latents ``(B, C, h, w)`` become flow states and back.

    Args:
        kind: ``shared`` or ``stacked`` (see the module docstring).
        noise: ``stacked`` only: standard deviation of the fill (``0``: zeros).
        image_noise: ``stacked`` only: standard deviation of the Gaussian noise in the image part at the mask end,
            where synthesis starts, on the painting when there is one (``None``: ``noise``).
    """

    def __init__(self, kind: str = "shared", noise: float = 0.0, image_noise: float | None = None) -> None:
        self.kind, self.noise = kind, float(noise)
        self.image_noise = self.noise if image_noise is None else float(image_noise)

    @property
    def stacked(self) -> bool:
        return self.kind == "stacked"

    def channels(self, latent_channels: int) -> int:
        """Channels of a state for latents of ``latent_channels`` channels."""
        return 2 * latent_channels if self.stacked else latent_channels

    def _fill(self, like: torch.Tensor, generator: torch.Generator | None, per_sample: bool = True,
              std: float | None = None) -> torch.Tensor:
        std = self.noise if std is None else std
        if std == 0:
            return torch.zeros_like(like)
        device = generator.device if generator is not None else like.device
        shape = like.shape if per_sample else (1, *like.shape[1:])
        noise = torch.randn(shape, generator=generator, device=device, dtype=like.dtype)
        return (std * noise).to(like.device).expand_as(like)

    def image_state(self, z: torch.Tensor, generator: torch.Generator | None = None,
                    per_sample: bool = True) -> torch.Tensor:
        """The state at ``t = 0`` for image latents ``z`` ``(B, C, h, w)``: ``z`` itself, or ``[z, fill]``.
        ``per_sample=False`` draws one fill for the whole batch (so that an image's state does not depend on
        the batch it came in: what deterministic segmentation needs)."""
        return torch.cat([z, self._fill(z, generator, per_sample)], dim=1) if self.stacked else z

    def mask_state(self, z: torch.Tensor, generator: torch.Generator | None = None,
                   source: torch.Tensor | None = None) -> torch.Tensor:
        """The state at ``t = 1`` for mask latents ``z`` ``(B, C, h, w)``: ``z`` itself, or ``[fill, z]``; with a
        ``source`` (same shape: a painting of the mask, :mod:`semflow.flow.class_means`) ``[source + noise, z]``
        (the noise of ``image_noise``; none drawn where it is 0)."""
        if not self.stacked:
            return z
        image = self._fill(z, generator, std=self.image_noise)
        if source is not None:
            image = source.to(z.dtype) if self.image_noise == 0 else source.to(z.dtype) + image
        return torch.cat([image, z], dim=1)

    def image_part(self, state: torch.Tensor) -> torch.Tensor:
        """The image latents of a state ``(B, C or 2C, h, w)``: what the codec decodes into an image."""
        return state.chunk(2, dim=1)[0] if self.stacked else state

    def mask_part(self, state: torch.Tensor) -> torch.Tensor:
        """The mask latents of a state: what the codec decodes into a pseudo-mask."""
        return state.chunk(2, dim=1)[1] if self.stacked else state

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """The mean of per-element ``values`` ``(B, C or 2C, h, w)`` over a state, the image and mask parts weighing
        equally (for a shared state, whose parts are the whole state, the plain mean)."""
        return 0.5 * torch.mean(self.image_part(values)) + 0.5 * torch.mean(self.mask_part(values))

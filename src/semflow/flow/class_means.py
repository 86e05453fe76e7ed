"""A scene's class colours as the image part's source at the mask end (``model.image_source=class-means``).

Synthesis from a pseudo-mask plus a small perturbation is nearly deterministic: the mask end carries almost no
randomness, so the flow learns the mean image of a mask and its samples differ little. Here the image part of a
``stacked`` state at ``t = 1`` is the mask *painted* with a scene's class-mean latents,

    ``src[:, p] = mu_c``, ``c`` the class of pixel ``p``, ``mu_c = mean of E(image)[:, q] over pixels q of class c``

(pixels of the ignore label get the mean over the whole scene), plus the ``stacked`` fill. Training paints each
mask with its own image's means, so the flow learns to turn a flat colour layout into an image (as SDEdit turns a
stroke painting into one). Synthesis paints the mask with the means of a training scene drawn at random
(:class:`SceneBank`, saved with the model): a mask's samples then differ by the colours of real scenes (a red or
a white car, a grey or a blue sky), a variety the network only has to carry out, not to invent. Segmentation starts
from the image end and reads the mask part; it never sees the source.

Means are taken in the image part's own units (pixels, or a latent codec's latents), the labels resized to the
latent grid by nearest neighbour.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from semflow.data.transforms import resize_label
from semflow.errors import SemflowInputError


def _rows(labels: torch.Tensor, size: tuple[int, int], num_classes: int, device: torch.device) -> torch.Tensor:
    """Each pixel's row of a ``(K + 1)``-row table: class maps ``(B, H, W)`` resized to ``size`` by nearest neighbour,
    flattened to ``(B, h*w)``, the ignore label (anything outside ``0..K-1``) on row ``K``."""
    small = resize_label(labels.long(), size).to(device).flatten(1)
    return torch.where((small >= 0) & (small < num_classes), small, torch.full_like(small, num_classes))


def class_means(z: torch.Tensor, labels: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each scene's mean latent per class.

    Args:
        z: latents ``(B, C, h, w)``.
        labels: class maps ``(B, H, W)``, any size (resized to ``(h, w)`` by nearest neighbour); values outside
            ``0..num_classes-1`` (the ignore label) count only towards the whole-scene mean.
        num_classes: ``K``.

    Returns:
        ``means`` ``(B, K + 1, C)``: row ``c < K`` the mean over the pixels of class ``c`` (zero where absent), row
        ``K`` the mean over the whole scene; ``present`` ``(B, K + 1)`` bool: which rows are means of something.
    """
    rows = _rows(labels, tuple(z.shape[-2:]), num_classes, z.device)  # (B, h*w)
    flat = z.float().flatten(2).transpose(1, 2)  # (B, h*w, C)
    sums = flat.new_zeros(z.shape[0], num_classes + 1, z.shape[1]).scatter_add_(
        1, rows.unsqueeze(-1).expand_as(flat), flat)
    counts = flat.new_zeros(z.shape[0], num_classes + 1).scatter_add_(1, rows, torch.ones_like(rows, dtype=flat.dtype))
    sums[:, num_classes], counts[:, num_classes] = flat.sum(dim=1), rows.shape[1]  # the whole scene, ignore included
    return (sums / counts.clamp(min=1).unsqueeze(-1)).to(z.dtype), counts > 0


def paint(labels: torch.Tensor, means: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The class maps painted with the means: ``labels`` ``(B, H, W)`` (resized to ``size = (h, w)`` by nearest
    neighbour; the ignore label takes row ``K``) and ``means`` ``(B, K + 1, C)`` to ``(B, C, h, w)``."""
    rows = _rows(labels, size, means.shape[1] - 1, means.device)
    painted = torch.gather(means, 1, rows.unsqueeze(-1).expand(-1, -1, means.shape[2]))  # (B, h*w, C)
    return painted.transpose(1, 2).reshape(means.shape[0], means.shape[2], *size)


# The largest magnitude of a latent a scene bank may hold: the codecs' normalised latents (pixels in [-1, 1],
# the VAEs' scaled latents) lie within a few units, so a mean beyond 100 is a damaged or edited file.
MAX_LATENT = 100.0


@dataclass
class SceneBank:
    """Class means of ``N`` training scenes, what synthesis paints a mask with.

    ``means`` ``(N, K + 1, C)`` and ``present`` ``(N, K + 1)`` as :func:`class_means` returns them.
    """

    means: torch.Tensor
    present: torch.Tensor

    FILE = "scenes.safetensors"

    def __post_init__(self) -> None:
        if self.means.dim() != 3 or self.present.shape != self.means.shape[:2] or self.means.shape[0] < 1:
            raise SemflowInputError(f"a scene bank needs means (N, K+1, C) and presence (N, K+1) with N >= 1; got "
                                    f"{tuple(self.means.shape)} and {tuple(self.present.shape)}")
        self.present = self.present.bool()
        # A class absent from a scene is painted with its mean over the scenes that have it (or, where no scene
        # does, the mean scene colour): a drawn scene then paints every class of any mask.
        weight = self.present.float().unsqueeze(-1)
        overall = self.means[:, -1].float().mean(dim=0)
        pooled = (self.means.float() * weight).sum(0) / weight.sum(0).clamp(min=1)
        self.fallback = torch.where(self.present.any(0).unsqueeze(-1), pooled, overall).to(self.means.dtype)

    def complete(self, means: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """Scenes' class means ``(B, K + 1, C)`` with the rows ``present`` ``(B, K + 1)`` marks absent replaced by
        the bank's :attr:`fallback`."""
        return torch.where(present.unsqueeze(-1), means, self.fallback.to(means.device, means.dtype))

    def draw(self, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``count`` scenes drawn uniformly with replacement (``generator`` on the CPU): means ``(count, K + 1, C)``,
        absent classes filled in."""
        index = torch.randint(self.means.shape[0], (count,), generator=generator)
        return self.complete(self.means[index], self.present[index])

    def save(self, directory: Path) -> None:
        """Write ``directory/scenes.safetensors``."""
        from safetensors.torch import save_file

        save_file({"means": self.means.float().contiguous().cpu(), "present": self.present.to(torch.uint8).cpu()},
                  str(Path(directory) / self.FILE))

    @classmethod
    def load(cls, directory: Path, num_classes: int, channels: int) -> SceneBank:
        """Read ``directory/scenes.safetensors`` (safetensors only: no code runs) for ``num_classes`` classes of
        ``channels``-channel latents; one clear error where it is missing or does not fit."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = Path(directory) / cls.FILE
        if not path.is_file():
            raise SemflowInputError(f"{directory}: model.image_source=class-means needs {cls.FILE} (the training "
                                    "scenes' class colours), which is missing; retrain the model")
        try:
            data = load_file(str(path))
        except (SafetensorError, OSError) as err:
            raise SemflowInputError(f"{path}: not a readable safetensors file ({err})") from None
        means, present = data.get("means"), data.get("present")
        if means is None or present is None or means.dim() != 3 or tuple(means.shape[1:]) != (num_classes + 1, channels):
            got = None if means is None else tuple(means.shape)
            raise SemflowInputError(f"{path}: expected 'means' (N, {num_classes + 1}, {channels}) and 'present'; "
                                    f"got means {got}")
        if not means.is_floating_point() or present.dtype not in (torch.uint8, torch.bool):
            raise SemflowInputError(f"{path}: means are {means.dtype} and presence {present.dtype}; expected floats "
                                    "and 0/1 flags (uint8)")
        if not torch.isfinite(means).all():
            raise SemflowInputError(f"{path}: the scene means are not all finite")
        largest = float(means.abs().max())
        if largest > MAX_LATENT:
            raise SemflowInputError(f"{path}: a scene mean of magnitude {largest:.3g}; latents lie within "
                                    f"+-{MAX_LATENT:g} (the file was scaled or damaged; retrain the model)")
        if bool((present.to(torch.int64) > 1).any()):
            raise SemflowInputError(f"{path}: 'present' holds values other than 0 and 1")
        return cls(means, present.bool())

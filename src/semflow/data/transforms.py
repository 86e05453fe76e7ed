"""Transforms that bring samples to the model's size, identical for image and label.

Images are resized with antialiased bilinear filtering; labels always with nearest neighbour (labels are
never interpolated). Training adds a random scale/crop and a horizontal flip; evaluation resizes the image
only and keeps the label at its original size, since predictions are scored there.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from semflow.data.base import Sample


def resize_image(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize float images ``(..., 3, H, W)`` to ``size = (h, w)`` with antialiased bilinear filtering; the result
    stays within the input's range (images in ``[0, 1]`` stay in ``[0, 1]``)."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    lead = image.shape[:-3]
    out = F.interpolate(image.reshape(-1, *image.shape[-3:]), size=size, mode="bilinear", antialias=True,
                        align_corners=False)
    # Each output is a weighted mean of inputs, but the weights' float sum can exceed 1 by a rounding error (CamVid
    # crops reached 1 + 1e-7, which the library's [0, 1] check refuses).
    return out.clamp_(float(image.min()), float(image.max())).reshape(*lead, *out.shape[-3:])


def resize_label(label: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize integer label maps ``(..., H, W)`` to ``size = (h, w)`` by nearest neighbour."""
    if tuple(label.shape[-2:]) == tuple(size):
        return label
    lead = label.shape[:-2]
    # uint8 maps are resized as they are (1 byte a pixel: an 8000x8000 mask needs 64 MB, not 256 MB as float).
    flat = label.reshape(-1, 1, *label.shape[-2:])
    flat = flat if flat.dtype == torch.uint8 else flat.float()
    out = F.interpolate(flat, size=size, mode="nearest-exact")
    return out.reshape(*lead, *size).to(label.dtype)


TRAIN_SCALE = (1.0, 1.5)


def train_transform(
    sample: Sample,
    size: tuple[int, int],
    generator: torch.Generator,
    scale: tuple[float, float] = TRAIN_SCALE,
    flip: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random scale, random crop to ``size`` and random horizontal flip.

    The whole image is first resized to ``size`` times a factor drawn from ``scale``, to the model's aspect
    ratio as :func:`eval_transform` resizes it, so that training and evaluation see the same geometry (a square
    model on 4:3 photos sees them squeezed by 4/3 in both; keeping the photo's aspect here instead would train
    on shapes the model never meets at test time). At factor 1 the crop is the evaluation input itself.

    Args:
        sample: original-size sample.
        size: output ``(h, w)``.
        generator: source of randomness (so a seed reproduces the augmentation).
        scale: range of the factor; a factor above 1 zooms in before the random crop.
        flip: flip left-right with probability 1/2.

    Returns:
        ``image`` float ``(3, h, w)`` in ``[0, 1]`` and ``label`` int64 ``(h, w)``.
    """
    image = sample["image"].float() / 255.0
    label = sample["label"]
    h, w = size
    factor = float(torch.empty(()).uniform_(scale[0], scale[1], generator=generator))
    mid = (max(h, round(h * factor)), max(w, round(w * factor)))
    image, label = resize_image(image, mid), resize_label(label, mid)
    top = int(torch.randint(0, mid[0] - h + 1, (), generator=generator))
    left = int(torch.randint(0, mid[1] - w + 1, (), generator=generator))
    image, label = image[:, top : top + h, left : left + w], label[top : top + h, left : left + w]
    if flip and draw_flip(generator):
        image, label = image.flip(-1), label.flip(-1)
    return image.contiguous(), label.contiguous()


def draw_flip(generator: torch.Generator) -> bool:
    """A fair coin from ``generator``: flip left-right or not."""
    return bool(torch.rand((), generator=generator) < 0.5)


def resize_pair(sample: Sample, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """No random change: ``image`` float ``(3, h, w)`` in ``[0, 1]`` and ``label`` int64 ``(h, w)``, both
    resized to ``size`` (the image antialiased bilinear, the label nearest neighbour)."""
    return resize_image(sample["image"].float() / 255.0, size), resize_label(sample["label"], size)


def eval_transform(sample: Sample, size: tuple[int, int]) -> torch.Tensor:
    """The image resized to the model's ``size``: float ``(3, h, w)`` in ``[0, 1]``; the label stays as is."""
    return resize_image(sample["image"].float() / 255.0, size)

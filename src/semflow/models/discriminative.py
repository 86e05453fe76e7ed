"""The discriminative baseline: the same backbone trained with per-pixel cross-entropy, one forward pass.

The network maps the image latent ``E(image)`` ``(B, C, h/f, w/f)`` to class logits ``(B, K, h/f, w/f)`` (its
timestep input is held at 0), upsampled bilinearly to the model size. It is the upper reference for SemFlow's
mIoU on the same data and budget, and the independent segmenter that scores synthesized images (SIS-mIoU).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from semflow.config import ModelConfig
from semflow.codecs import Codec, Posterior
from semflow.data.base import DatasetInfo
from semflow.errors import SemflowInputError
from semflow.images import as_images
from semflow.losses import cross_entropy_loss, labels_from_logits, logits_at
from semflow.models.base import SegmentationOutput, Segmenter, TrainingTime
from semflow.data.transforms import resize_label


class DiscriminativeSegmenter(Segmenter, method="discriminative"):
    """Per-pixel classification (``model.method=discriminative``); ``steps`` and ``solver`` do not apply.

    The network is called with its timestep held at 0: it is a classifier, not a velocity field."""

    SOLVERS: ClassVar[tuple[str, ...]] = ("forward",)
    DEFAULT_SOLVER: ClassVar[str | None] = "forward"
    STEPPED: ClassVar[bool] = False

    @classmethod
    def network_channels(cls, codec: Codec, dataset: DatasetInfo, config: ModelConfig) -> tuple[int, int]:
        """Image latents in (``C``), one logit per class out (``K``)."""
        return codec.latent_channels, dataset.num_classes

    def logits(self, network: nn.Module, z_image: torch.Tensor) -> torch.Tensor:
        """Class logits ``(B, K, h, w)`` at the model size from image latents ``(B, C, h/f, w/f)``."""
        out = network(z_image, torch.zeros(z_image.shape[0], device=z_image.device))
        return logits_at(out.sample if hasattr(out, "sample") else out, self.size)

    def posterior_training_loss(
        self,
        posterior: Posterior,
        labels: torch.Tensor,
        trainable: nn.Module | None = None,
        generator: torch.Generator | None = None,
        at: TrainingTime | None = None,
    ) -> torch.Tensor:
        """Mean cross-entropy over the labelled pixels of ``labels`` ``(B, h, w)`` (ignore pixels left out; ``0``
        for a batch with none), as a SemFlow class head is trained (:func:`semflow.losses.cross_entropy_loss`)."""
        network = self.network if trainable is None else trainable
        with torch.no_grad():
            z_image = posterior.sample(generator)
        return cross_entropy_loss(self.logits(network, z_image.to(next(network.parameters()).dtype)), labels,
                         self.dataset.ignore_index)

    @torch.no_grad()
    def segment(self, images: torch.Tensor, steps: int = 1, solver: str | None = None,
                return_trajectory: bool = False, latents: torch.Tensor | None = None) -> SegmentationOutput:
        """Segment ``images`` ``(B, 3, H, W)`` in ``[0, 1]`` in one forward pass (``steps`` is ignored; ``latents``:
        :meth:`encode_input` of ``images`` when already computed).
        ``pseudo_mask`` is the palette colour of each predicted class, ``(B, 3, h, w)`` at the model size."""
        self.check_solver(solver)
        if steps < 1:
            raise SemflowInputError(f"steps={steps}; expected a whole number >= 1")
        images = as_images(images)
        z_image = self.encode_input(images) if latents is None else latents
        predicted = labels_from_logits(self.logits(self.network, z_image), self.size)
        in_size = (int(images.shape[-2]), int(images.shape[-1]))
        return SegmentationOutput(labels=resize_label(predicted, in_size),
                                  pseudo_mask=self.palette.encode(predicted))

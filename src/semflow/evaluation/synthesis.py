"""Scoring mask-to-image synthesis with what runs anywhere, and with FID/LPIPS where their weights exist.

For every mask of a split, ``K`` images are synthesized (a fresh perturbation each) and scored by:

* **SIS-mIoU**: an independently trained segmenter (the discriminative baseline) segments each synthesized
  image; mIoU of its predictions against the input masks (the protocol of SPADE-style papers).
* **Cycle mIoU**: the same SemFlow model segments its own synthesized images (mask -> image -> mask).
* **Diversity**: mean pairwise pixel L1 (``[0, 1]`` scale) between the ``K`` samples of each mask, averaged
  over masks; with an LPIPS metric also the mean pairwise LPIPS (the paper's LPIPS column).
* **High-frequency energy**: the mean absolute Laplacian of each image in pixel space
  (:mod:`semflow.evaluation.laplacian`), of the samples and of the real images of the same masks, and their
  ratio: near 0 for flat samples, 1 where they carry the real images' texture.
* **FD-seg**: the Fréchet distance between real and synthesized images in the feature space of the
  discriminative segmenter's UNet bottleneck (``mid_block`` output, averaged over space). It is *not* FID: it
  uses a network trained here on the same data, so it compares models of one run, not papers.
* **FID**, when given a metric built by :func:`semflow.evaluation.perceptual.make_fid` (real Inception weights).

Confusion matrices are scored at the labels' original size, as in :mod:`semflow.evaluation.segmentation`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from semflow.data.base import SegmentationDataset
from semflow.data.transforms import resize_label
from semflow.evaluation.diversity import mean_pairwise_distance
from semflow.errors import SemflowInputError
from semflow.evaluation.segmentation import collate_at_size, check_compatible
from semflow.evaluation.frechet import FeatureStatistics, frechet_distance_between
from semflow.evaluation.laplacian import laplacian_energy
from semflow.evaluation.metrics import ConfusionMatrix
from semflow.models.base import Segmenter
from semflow.seeding import make_generator


@dataclass
class SynthesisResult:
    """Scores of one synthesis evaluation; ``None`` where a metric was not computed."""

    sis_miou: float | None
    cycle_miou: float | None
    diversity_l1: float | None
    diversity_lpips: float | None
    fd_seg: float | None
    fid: float | None
    hf_energy: float
    hf_energy_real: float
    hf_ratio: float | None
    seconds_per_image: float
    num_masks: int
    samples: int
    steps: int
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def segment_with_features(segmenter: Segmenter, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One pass of ``segmenter`` over images ``(B, 3, H, W)`` in ``[0, 1]``: its labels ``(B, H, W)`` and its
    network's ``mid_block`` output averaged over space, features ``(B, D)`` (``D``: the UNet's widest channels)."""
    mid = next((m for name, m in segmenter.network.named_modules() if name.split(".")[-1] == "mid_block"), None)
    if mid is None:
        raise SemflowInputError(f"the {type(segmenter.network).__name__} network has no mid_block to take features from")
    captured: list[torch.Tensor] = []
    handle = mid.register_forward_hook(lambda _m, _i, out: captured.append(out[0] if isinstance(out, tuple) else out))
    try:
        labels = segmenter.segment(images).labels
    finally:
        handle.remove()
    return labels, captured[-1].float().mean(dim=(-2, -1))


@torch.no_grad()
def evaluate_synthesis(
    model: Segmenter,
    dataset: SegmentationDataset,
    segmenter: Segmenter | None = None,
    steps: int = 25,
    samples: int = 2,
    solver: str | None = None,
    seed: int = 0,
    cycle_steps: int | None = None,
    batch_size: int = 8,
    fid: Any = None,
    lpips: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    indices: Sequence[int] | None = None,
    progress: Callable[[Iterable[Any]], Iterable[Any]] = lambda it: it,
) -> SynthesisResult:
    """Synthesize ``samples`` images for every mask of ``dataset`` and score them (see the module docstring).

    Args:
        model: a SemFlow model (it synthesizes and, for the cycle, segments).
        dataset: masks to synthesize from; its images are the real side of FD-seg and FID.
        segmenter: an independently trained segmenter (a discriminative model) for SIS-mIoU and FD-seg.
        steps: synthesis solver steps; ``cycle_steps`` (default ``steps``) for segmenting them back.
        samples: images per mask ``K`` (diversity needs ``K >= 2``).
        seed: mask ``i`` of the split gets the perturbations of ``make_generator(seed, i)`` whatever the batching,
            as ``semflow synthesize --seed`` gives the ``i``-th mask of its list.
        fid: a torchmetrics ``FrechetInceptionDistance`` (``normalize=True``) or ``None``.
        lpips: a distance ``(x, y) -> (N,)`` on images in ``[0, 1]`` (LPIPS) for diversity, or ``None``.
        indices: score only these masks of the split.
    """
    if not model.can_synthesize:
        raise SemflowInputError(f"a {model.method} model only segments; synthesis is scored for models that "
                                "synthesize (model.method=semflow)")
    if samples < 1 or steps < 1:
        raise SemflowInputError(f"samples={samples}, steps={steps}; expected whole numbers >= 1")
    check_compatible(model, dataset)
    if segmenter is not None:
        check_compatible(segmenter, dataset)
    subset = dataset if indices is None else Subset(dataset, list(indices))
    if len(subset) == 0:  # type: ignore[arg-type]
        raise SemflowInputError(f"data set split {dataset.split!r} is empty")
    info = dataset.info
    sis = ConfusionMatrix(info.num_classes, info.ignore_index) if segmenter is not None else None
    cycle = ConfusionMatrix(info.num_classes, info.ignore_index)
    real, fake = FeatureStatistics(), FeatureStatistics()
    l1: list[torch.Tensor] = []
    perceptual: list[torch.Tensor] = []
    energy, energy_real = [], []  # per image: the samples' and the real images' mean absolute Laplacian
    seconds, done = 0.0, 0
    loader = DataLoader(subset, batch_size=batch_size, collate_fn=lambda b: collate_at_size(b, model.size))  # type: ignore[arg-type]
    device = next(model.parameters()).device
    for batch in progress(loader):
        labels = batch["labels"]
        masks = torch.stack([resize_label(label, model.size) for label in labels])
        generators = [make_generator(seed, done + i) for i in range(len(labels))]
        start = time.perf_counter()
        images = model.synthesize(masks, steps=steps, samples=samples, solver=solver, generator=generators).images
        seconds += time.perf_counter() - start
        done += len(labels)
        flat = images.flatten(0, 1).to(device)  # (B*K, 3, h, w), mask b's samples adjacent
        energy.append(laplacian_energy(flat).cpu())
        energy_real.append(laplacian_energy(batch["images"]))
        repeated = [label for label in labels for _ in range(samples)]
        predicted = model.segment(flat, steps=cycle_steps or steps).labels
        for pred, label in zip(predicted, repeated):
            cycle.update(resize_label(pred.cpu(), tuple(label.shape)), label)
        if segmenter is not None:
            sis_labels, fake_features = segment_with_features(segmenter, flat)
            for pred, label in zip(sis_labels, repeated):
                sis.update(resize_label(pred.cpu(), tuple(label.shape)), label)  # type: ignore[union-attr]
            fake.update(fake_features.cpu())
            real.update(segment_with_features(segmenter, batch["images"].to(device))[1].cpu())
        if samples >= 2:
            l1.append(mean_pairwise_distance(images.cpu()))
            if lpips is not None:
                perceptual.append(mean_pairwise_distance(images, distance=lpips).cpu())
        if fid is not None:
            fid.update(batch["images"].to(device), real=True)
            fid.update(flat, real=False)
    notes = []
    if samples < 2:
        notes.append("diversity needs at least 2 samples per mask")
    if segmenter is None:
        notes.append("no segmenter given: SIS-mIoU and FD-seg not computed")
    fd = None
    if segmenter is not None:
        if min(real.count, fake.count) < 2:
            notes.append("FD-seg needs at least 2 images")
        else:
            fd = frechet_distance_between(real, fake)
    hf, hf_real = float(torch.cat(energy).mean()), float(torch.cat(energy_real).mean())
    return SynthesisResult(
        sis_miou=sis.scores().miou if sis is not None else None,
        cycle_miou=cycle.scores().miou,
        diversity_l1=float(torch.cat(l1).mean()) if l1 else None,
        diversity_lpips=float(torch.cat(perceptual).mean()) if perceptual else None,
        fd_seg=fd,
        fid=float(fid.compute()) if fid is not None else None,
        hf_energy=hf, hf_energy_real=hf_real, hf_ratio=hf / hf_real if hf_real > 0 else None,
        seconds_per_image=seconds / (done * samples),
        num_masks=done, samples=samples, steps=steps, notes=notes,
    )

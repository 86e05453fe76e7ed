"""Scoring mask-to-image synthesis by independent judges, and with FID/LPIPS where their weights exist.

For every mask of a split, ``K`` images are synthesized (a fresh perturbation each) and scored. By each judge
(:mod:`semflow.evaluation.judge`: a segmenter trained once per data set on its real images, never by the run that
trained the synthesizer; several may be given, e.g. the trained judge and the pretrained ESPNet release):

* **SIS-mIoU**: the judge segments each synthesized image; mIoU of its predictions against the input masks (the
  protocol of SPADE-style papers).
* **FD** and **KID**: the Fréchet distance (:mod:`~semflow.evaluation.frechet`) and the unbiased kernel distance
  (:mod:`~semflow.evaluation.kid`) between real and synthesized images in the judge's feature space (its 1/8-scale
  encoder output averaged over space, 256 values). Not FID: they compare models judged by the same judge.
  The real side is the split's images at the synthesizer's size, so that resolution is no part of the distance.
* **Feature diversity**: the mean distance between two samples of one mask in the judge's multi-layer features
  (:mod:`~semflow.evaluation.feature_distance`, the LPIPS analogue).

Without a judge:

* **Cycle mIoU**: a model that also segments (SemFlow) segments its own synthesized images (mask -> image ->
  mask); ``None`` for synthesis-only models.
* **Pixel diversity**: mean pairwise pixel L1 (``[0, 1]`` scale) between the ``K`` samples of each mask; with an
  LPIPS metric also the mean pairwise LPIPS (the paper's LPIPS column).
* **High-frequency energy**: the mean absolute Laplacian of each image in pixel space
  (:mod:`semflow.evaluation.laplacian`), of the samples and of the real images of the same masks, and their
  ratio: near 0 for flat samples, 1 where they carry the real images' texture.
* **FID**, when given a metric built by :func:`semflow.evaluation.perceptual.make_fid` (real Inception weights).

Confusion matrices are scored at the labels' original size, as in :mod:`semflow.evaluation.segmentation`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch
from torch.utils.data import DataLoader, Subset

from semflow.data.base import SegmentationDataset
from semflow.data.transforms import resize_image, resize_label
from semflow.errors import SemflowInputError
from semflow.evaluation.diversity import mean_pairwise_distance
from semflow.evaluation.feature_distance import judge_distance
from semflow.evaluation.frechet import FeatureStatistics, frechet_distance_between
from semflow.evaluation.judge import Judge
from semflow.evaluation.kid import kernel_distance
from semflow.evaluation.laplacian import laplacian_energy
from semflow.evaluation.metrics import ConfusionMatrix
from semflow.evaluation.segmentation import check_compatible, collate_at_size
from semflow.models.base import Segmenter
from semflow.seeding import make_generator


@dataclass
class JudgedScores:
    """One judge's scores of a set of images (``None`` where not computed): ``judge`` names it (:attr:`Judge.name`);
    ``sis_miou`` in ``[0, 1]``; ``fd`` and ``kid`` in squared feature units; ``kid_std`` over subsets;
    ``diversity`` the mean feature distance between two samples of one mask (``[0, 12]``)."""

    judge: str
    sis_miou: float | None = None
    fd: float | None = None
    kid: float | None = None
    kid_std: float | None = None
    diversity: float | None = None


def pooled_features(judge: Judge, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels ``(B, h, w)`` at the judge's size and features ``(B, 256)`` (1/8-scale encoder output averaged over
    space) of images ``(B, 3, H, W)`` in ``[0, 1]``, on the CPU, from one pass of the judge."""
    with torch.no_grad():
        out = judge.features(images)
    return out.logits.argmax(dim=1).cpu(), out.eighth.float().mean(dim=(-2, -1)).cpu()


def distances(real: torch.Tensor, fake: torch.Tensor, seed: int = 0) -> tuple[float | None, float | None, float | None]:
    """FD, KID and KID's std between feature sets ``(m, D)`` and ``(n, D)``; ``None`` for sets under 2 features."""
    if min(real.shape[0], fake.shape[0]) < 2:
        return None, None, None
    a, b = FeatureStatistics(), FeatureStatistics()
    a.update(real)
    b.update(fake)
    kid = kernel_distance(real, fake, generator=make_generator(seed))
    return frechet_distance_between(a, b), kid.kid, kid.std


@dataclass
class SynthesisResult:
    """Scores of one synthesis evaluation; ``None`` where a metric was not computed. ``judged`` maps each judge's
    role (the keys of ``evaluate_synthesis(judges=...)``) to its :class:`JudgedScores`."""

    judged: dict[str, JudgedScores]
    cycle_miou: float | None
    diversity_l1: float | None
    diversity_lpips: float | None
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
        out = dict(self.__dict__)
        out["judged"] = {role: asdict(scores) for role, scores in self.judged.items()}
        return out


@torch.no_grad()
def evaluate_synthesis(
    model: Segmenter,
    dataset: SegmentationDataset,
    judges: Mapping[str, Judge] | None = None,
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
        model: a model that synthesizes (SemFlow, which also segments for the cycle, or a synthesis-only model).
        dataset: masks to synthesize from; its images (at the model's size) are the real side of FD, KID and FID.
        judges: independent judges by role (e.g. ``{"judge": trained, "pretrained": release}``), each checked
            against the data set's classes; ``None`` or empty: no judged scores.
        steps: synthesis solver steps; ``cycle_steps`` (default ``steps``) for segmenting them back.
        samples: images per mask ``K`` (diversity needs ``K >= 2``).
        seed: mask ``i`` of the split gets the perturbations of ``make_generator(seed, i)`` whatever the batching,
            as ``semflow synthesize --seed`` gives the ``i``-th mask of its list; KID's subsets use ``seed`` too.
        fid: a torchmetrics ``FrechetInceptionDistance`` (``normalize=True``) or ``None``.
        lpips: a distance ``(x, y) -> (N,)`` on images in ``[0, 1]`` (LPIPS) for diversity, or ``None``.
        indices: score only these masks of the split.
    """
    if not model.can_synthesize:
        raise SemflowInputError(f"a {model.method} model only segments; synthesis is scored for models that "
                                "synthesize")
    if samples < 1 or steps < 1:
        raise SemflowInputError(f"samples={samples}, steps={steps}; expected whole numbers >= 1")
    check_compatible(model, dataset)
    judges = dict(judges or {})
    for role, judge in judges.items():
        judge.check_compatible(dataset.info, where=f"the {role} judge")
    subset = dataset if indices is None else Subset(dataset, list(indices))
    if len(subset) == 0:  # type: ignore[arg-type]
        raise SemflowInputError(f"data set split {dataset.split!r} is empty")
    info = dataset.info
    # The cycle (mask -> image -> mask by the same model) exists only for models that also segment.
    cycle = ConfusionMatrix(info.num_classes, info.ignore_index) if getattr(model, "can_segment", True) else None
    sis = {role: ConfusionMatrix(info.num_classes, info.ignore_index) for role in judges}
    real: dict[str, list[torch.Tensor]] = {role: [] for role in judges}
    fake: dict[str, list[torch.Tensor]] = {role: [] for role in judges}
    apart: dict[str, list[torch.Tensor]] = {role: [] for role in judges}
    looks = {role: judge_distance(judge.features) for role, judge in judges.items()}
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
        if cycle is not None:
            predicted = model.segment(flat, steps=cycle_steps or steps).labels
            for pred, label in zip(predicted, repeated):
                cycle.update(resize_label(pred.cpu(), tuple(label.shape)), label)
        for role, judge in judges.items():
            judged_labels, features = pooled_features(judge, flat)
            for pred, label in zip(judged_labels, repeated):
                sis[role].update(resize_label(pred, tuple(label.shape)), label)
            fake[role].append(features)
            real[role].append(pooled_features(judge, batch["images"])[1])
            if samples >= 2:
                apart[role].append(mean_pairwise_distance(images.cpu(), distance=looks[role]))
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
    if not judges:
        notes.append("no judge given: SIS-mIoU, FD, KID and feature diversity not computed")
    judged = {}
    for role, judge in judges.items():
        fd, kid, kid_std = distances(torch.cat(real[role]), torch.cat(fake[role]), seed)
        judged[role] = JudgedScores(judge.name, sis[role].scores().miou, fd, kid, kid_std,
                                    float(torch.cat(apart[role]).mean()) if apart[role] else None)
    hf, hf_real = float(torch.cat(energy).mean()), float(torch.cat(energy_real).mean())
    return SynthesisResult(
        judged=judged,
        cycle_miou=cycle.scores().miou if cycle is not None else None,
        diversity_l1=float(torch.cat(l1).mean()) if l1 else None,
        diversity_lpips=float(torch.cat(perceptual).mean()) if perceptual else None,
        fid=float(fid.compute()) if fid is not None else None,
        hf_energy=hf, hf_energy_real=hf_real, hf_ratio=hf / hf_real if hf_real > 0 else None,
        seconds_per_image=seconds / (done * samples),
        num_masks=done, samples=samples, steps=steps, notes=notes,
    )


@torch.no_grad()
def judge_real_images(
    dataset: SegmentationDataset,
    judges: Mapping[str, Judge],
    size: tuple[int, int],
    indices: Sequence[int] | None = None,
    batch_size: int = 16,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """The ceiling row: each judge on the split's real images, as :func:`evaluate_synthesis` sees samples.

    Per judge role: ``sis_miou``, the judge's mIoU on the real images brought to the synthesizers' ``size`` (what a
    perfect synthesizer at that size would score), ``miou_own_size`` on the real images at the judge's own size
    (the judge's accuracy), and ``fd``, ``kid``, ``kid_std`` between the two halves of the images (even and odd
    positions; the distance two real samples of the data have at this test size)."""
    chosen = list(range(len(dataset))) if indices is None else list(indices)
    out: dict[str, dict[str, Any]] = {}
    for role, judge in judges.items():
        judge.check_compatible(dataset.info, where=f"the {role} judge")
        small = ConfusionMatrix(dataset.info.num_classes, dataset.info.ignore_index)
        own = ConfusionMatrix(dataset.info.num_classes, dataset.info.ignore_index)
        features = []
        for start in range(0, len(chosen), batch_size):
            batch = [dataset[i] for i in chosen[start:start + batch_size]]
            for sample in batch:
                image = sample["image"].float().unsqueeze(0) / 255
                label = sample["label"]
                labels, feature = pooled_features(judge, resize_image(image, size))
                small.update(resize_label(labels[0], tuple(label.shape)), label)
                features.append(feature)
                own.update(resize_label(judge.segment(image)[0].cpu(), tuple(label.shape)), label)
        feats = torch.cat(features)
        fd, kid, kid_std = distances(feats[0::2], feats[1::2], seed)
        out[role] = {"judge": judge.name, "sis_miou": small.scores().miou, "miou_own_size": own.scores().miou,
                     "fd": fd, "kid": kid, "kid_std": kid_std, "num_images": len(chosen)}
    return out

"""The judge of syntheses: a segmenter trained once per data set, independent of the models it scores.

Synthesis scores (SIS-mIoU, Fréchet distance, KID, feature diversity) must not come from a model that the same
run trains on the same budget. The judge is an ESPNet (:mod:`semflow.networks.espnet`) trained on the real
training images of one data set with a generous budget, at the data's resolution, and kept in a cache folder
named after a hash of its configuration and its training data, so every later run reuses it:

* where a local weights file of the authors' ESPNet release is given (CamVid), it starts from those weights (its
  first ``K`` outputs must be the data set's ``K`` classes in order, as the CamVid release's are); otherwise from
  scratch;
* its input is normalised as the release's models were trained: channels in BGR order, ``(255 x - mean) / std``
  per channel, then divided by 255 (``mean``/``std``: per-image channel means and standard deviations of the
  training images, averaged, in ``[0, 255]``), calibrated on the training images when the judge is made;
* the version (:func:`judge_key`) hashes the configuration (the weights file by its sha256, not its path) and the
  *content* of the training split: every sample's name and decoded image and label bytes, so a re-encoded,
  renamed, added or removed file makes a new judge, and a copied or touched one does not.

A judge folder holds ``judge.json`` (configuration, data set classes, key, training record, real-image scores)
and ``judge.safetensors``. Images given to the judge are ``(B, 3, H, W)`` in ``[0, 1]`` at any size: they are
resized to the judge's size (antialiased bilinear) before it segments them.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from semflow.data.base import DatasetInfo, SegmentationDataset
from semflow.data.transforms import resize_image, resize_label, train_transform
from semflow.errors import SemflowInputError
from semflow.evaluation.metrics import ConfusionMatrix, SegmentationScores
from semflow.networks.espnet import ESPNet, ESPNetFeatures
from semflow.seeding import make_generator

CONFIG_FILE = "judge.json"
WEIGHTS_FILE = "judge.safetensors"
# Bumped when training or the network changes in a way the configuration does not show: old judges are retrained.
JUDGE_VERSION = 1
# ENet's class weighting 1 / ln(c + p_class), as the ESPNet release trains with: rare classes (poles, signs)
# weigh up to ~10x more than the road, which the judge's mIoU (a mean over classes) rewards.
CLASS_WEIGHT_C = 1.10


@dataclass(frozen=True)
class JudgeConfig:
    """How a judge is made. Sizes in pixels; ``lr`` is Adam's peak rate, decayed by ``(1 - step/steps)^0.9``.

    Args:
        size: ``(H, W)`` the judge segments at, multiples of 8 (default: the training images' median size).
        steps: optimiser steps on the training split (with the bench's random scale/crop and flip).
        batch_size: images per step.
        lr: peak learning rate (Adam).
        weight_decay: Adam's L2 weight decay.
        p: ESP modules at 1/4 scale. q: ESP modules at 1/8 scale (the release's CamVid model: 2 and 8).
        pretrained: local weights of an ESPNet release file to start from; ``None`` trains from scratch.
        seed: initialisation, batches and augmentation.
    """

    size: tuple[int, int]
    steps: int = 3000
    batch_size: int = 8
    lr: float = 5e-4
    weight_decay: float = 1e-4
    p: int = 2
    q: int = 8
    pretrained: str | None = None
    seed: int = 0

    def check(self) -> None:
        h, w = self.size
        if h < 8 or w < 8 or h % 8 or w % 8:
            raise SemflowInputError(f"judge size {h}x{w}: expected sides that are multiples of 8")
        for name in ("steps", "batch_size", "p", "q"):
            if int(getattr(self, name)) < 1:
                raise SemflowInputError(f"judge {name}={getattr(self, name)}: expected a whole number >= 1")
        if not (math.isfinite(self.lr) and self.lr > 0) or not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise SemflowInputError(f"judge lr={self.lr}, weight_decay={self.weight_decay}: expected lr > 0, "
                                    "weight_decay >= 0, both finite")


@dataclass
class Normalization:
    """The release's input convention (module docstring): BGR, ``(255 x - mean) / std / 255``; RGB-ordered
    ``mean``/``std`` in ``[0, 255]``."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        mean = images.new_tensor(self.mean).view(1, 3, 1, 1)
        std = images.new_tensor(self.std).view(1, 3, 1, 1)
        return ((255 * images - mean) / std / 255).flip(1)

    @classmethod
    def of(cls, images: Iterable[torch.Tensor]) -> Normalization:
        """Calibrated on uint8 images ``(3, H, W)``: the per-image channel means and standard deviations, averaged."""
        means, stds = [], []
        for image in images:
            x = image.float().flatten(1)
            means.append(x.mean(dim=1))
            stds.append(x.std(dim=1))
        if not means:
            raise SemflowInputError("cannot calibrate the judge's normalisation on no images")
        mean, std = torch.stack(means).mean(0), torch.stack(stds).mean(0).clamp(min=1.0)
        return cls(tuple(mean.tolist()), tuple(std.tolist()))  # type: ignore[arg-type]


def default_judges_folder() -> Path:
    """``judges/`` in semflow's cache folder (``$SEMFLOW_CACHE``, else ``$XDG_CACHE_HOME/semflow``, else
    ``~/.cache/semflow``)."""
    from semflow.data.cache import default_cache_root

    return default_cache_root() / "judges"


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def data_fingerprint(dataset: SegmentationDataset, progress: Callable[[Iterable[Any]], Iterable[Any]] = lambda it: it
                     ) -> str:
    """sha256 of the split's content: its class list and, per sample in order, its name, image and label bytes."""
    digest = hashlib.sha256(json.dumps(dataset.info.to_dict(), sort_keys=True).encode())
    for index in progress(range(len(dataset))):
        sample = dataset[index]
        digest.update(sample["name"].encode() + b"\0")
        for tensor in (sample["image"], sample["label"]):
            digest.update(str((tuple(tensor.shape), str(tensor.dtype))).encode())
            digest.update(tensor.contiguous().numpy().tobytes())
    return digest.hexdigest()


def judge_key(config: JudgeConfig, fingerprint: str) -> str:
    """The judge's version: sha256 of :data:`JUDGE_VERSION`, the configuration (a weights file by its sha256)
    and the training data's :func:`data_fingerprint`."""
    described = asdict(config)
    if config.pretrained is not None:
        described["pretrained"] = sha256_file(config.pretrained)
    text = json.dumps({"version": JUDGE_VERSION, "config": described, "data": fingerprint}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def default_size(dataset: SegmentationDataset, limit: int = 64) -> tuple[int, int]:
    """The median size of (up to ``limit`` evenly spaced) training images, rounded to multiples of 8."""
    step = max(1, len(dataset) // limit)
    sizes = torch.tensor([tuple(dataset[i]["image"].shape[-2:]) for i in range(0, len(dataset), step)], dtype=torch.float)
    h, w = sizes.median(dim=0).values.tolist()
    return max(8, round(h / 8) * 8), max(8, round(w / 8) * 8)


class Judge(nn.Module):
    """A trained ESPNet with its data set's classes and input normalisation.

    Args:
        network: the ESPNet; its first ``K`` outputs are the data set's classes (further ones are never predicted).
        info: the data set it judges.
        config: how it was made.
        normalization: its input convention.
        record: how it came about (key, training time, real-image mIoU), as saved in ``judge.json``.
    """

    def __init__(self, network: ESPNet, info: DatasetInfo, config: JudgeConfig, normalization: Normalization,
                 record: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.network = network
        self.info = info
        self.config = config
        self.normalization = normalization
        self.record: dict[str, Any] = dict(record or {})

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.config.size)  # type: ignore[return-value]

    @property
    def name(self) -> str:
        """How tables name this judge: the network, its size and where it came from."""
        origin = "from the ESPNet release" if self.config.pretrained else "from scratch"
        trained = f"{self.config.steps} steps {origin}" if self.record.get("trained", True) else "release weights as they are"
        key = self.record.get("key", "")[:12]
        return f"ESPNet p={self.config.p} q={self.config.q} at {self.size[0]}x{self.size[1]} ({trained}{', ' + key if key else ''})"

    def check_compatible(self, info: DatasetInfo, where: str = "the judge") -> None:
        """Raise unless ``info`` has this judge's class list and ignore index."""
        if tuple(info.class_names) != tuple(self.info.class_names) or info.ignore_index != self.info.ignore_index:
            raise SemflowInputError(
                f"{where} was trained on {self.info.name!r} with {self.info.num_classes} classes (ignore "
                f"{self.info.ignore_index}), but the data set {info.name!r} has {info.num_classes} classes (ignore "
                f"{info.ignore_index}); expected the same class list"
            )

    def features(self, images: torch.Tensor) -> ESPNetFeatures:
        """One pass over images ``(B, 3, H, W)`` in ``[0, 1]`` (resized to the judge's size); logits are cut to the
        data set's ``K`` classes."""
        device = next(self.network.parameters()).device
        x = self.normalization(resize_image(images.float().to(device), self.size))
        out = self.network.forward_features(x)
        out.logits = out.logits[:, : self.info.num_classes]
        return out

    @torch.no_grad()
    def segment(self, images: torch.Tensor) -> torch.Tensor:
        """Labels ``(B, h, w)`` at the judge's size of images ``(B, 3, H, W)`` in ``[0, 1]``."""
        return self.features(images).logits.argmax(dim=1)

    def save(self, folder: str | Path) -> None:
        """``folder/judge.json`` and ``folder/judge.safetensors`` (the folder is created)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.network.state_dict().items()}
        save_file(state, str(folder / WEIGHTS_FILE))
        described = {"version": JUDGE_VERSION, "config": asdict(self.config), "outputs": self.outputs,
                     "normalization": asdict(self.normalization), "data": self.info.to_dict(), "record": self.record}
        (folder / CONFIG_FILE).write_text(json.dumps(described, indent=2) + "\n")

    @property
    def outputs(self) -> int:
        return int(self.network.classifier.weight.shape[0])

    @classmethod
    def load(cls, folder: str | Path) -> Judge:
        """A judge folder written by :meth:`save`; one-line errors for a missing or foreign folder."""
        folder = Path(folder)
        config_file, weights_file = folder / CONFIG_FILE, folder / WEIGHTS_FILE
        if not config_file.is_file() or not weights_file.is_file():
            raise SemflowInputError(f"{folder} is not a judge folder; expected {CONFIG_FILE} and {WEIGHTS_FILE} in it")
        try:
            described = json.loads(config_file.read_text())
            raw = dict(described["config"])
            raw["size"] = tuple(int(v) for v in raw["size"])
            config = JudgeConfig(**raw)
            normalization = Normalization(**{k: tuple(float(x) for x in v) for k, v in described["normalization"].items()})
            info = DatasetInfo.from_dict(described["data"])
            outputs = int(described["outputs"])
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise SemflowInputError(f"{config_file} is not a judge configuration ({type(err).__name__}: {err})") from None
        network = ESPNet(outputs, config.p, config.q)
        try:
            network.load_state_dict(load_file(str(weights_file)))
        except Exception as err:  # safetensors and load_state_dict raise several types for a foreign file
            raise SemflowInputError(f"{weights_file} does not hold the judge's ESPNet weights ({type(err).__name__}: "
                                    f"{str(err).splitlines()[0]})") from None
        return cls(network.eval(), info, config, normalization, described.get("record"))


def load_release_weights(path: str | Path, classes: int, p: int = 2, q: int = 8) -> ESPNet:
    """An ESPNet holding a release ``state_dict`` (``torch.load(weights_only=True)``, never run as code).

    Raises a one-line :class:`SemflowInputError` for a missing file, a file of another architecture, or one with
    fewer than ``classes`` outputs."""
    from semflow.weights import load_weights_only

    path = Path(path)
    if not path.is_file():
        raise SemflowInputError(f"ESPNet weights {path} do not exist; expected a local file such as "
                                "espnet_p_2_q_8_camvid.pth from the ESPNet release (nothing is downloaded)")
    state = load_weights_only(path, "an ESPNet state_dict")
    if not isinstance(state, dict) or "classifier.weight" not in state:
        raise SemflowInputError(f"{path} is not an ESPNet (encoder-decoder) state_dict; expected the keys of the "
                                "release's decoder models (classifier.weight, encoder.level1.conv.weight, ...)")
    outputs = int(state["classifier.weight"].shape[0])
    if outputs < classes:
        raise SemflowInputError(f"{path} has {outputs} outputs, fewer than the data set's {classes} classes")
    network = ESPNet(outputs, p, q)
    try:
        network.load_state_dict(state)
    except RuntimeError as err:
        raise SemflowInputError(f"{path} does not fit ESPNet p={p} q={q}: {str(err).splitlines()[1].strip()}") from None
    return network


def class_weights(labels: Sequence[torch.Tensor], num_classes: int, ignore_index: int | None) -> torch.Tensor:
    """ENet's weights ``1 / ln(c + p_k)`` from the class frequencies ``p_k`` of the labelled pixels, ``(K,)``."""
    counts = torch.zeros(num_classes, dtype=torch.float64)
    for label in labels:
        flat = label.flatten()
        flat = flat[(flat >= 0) & (flat < num_classes)] if ignore_index is None or ignore_index >= num_classes else \
            flat[(flat != ignore_index) & (flat >= 0) & (flat < num_classes)]
        counts += torch.bincount(flat, minlength=num_classes)[:num_classes].double()
    frequency = counts / counts.sum().clamp(min=1)
    return (1 / torch.log(CLASS_WEIGHT_C + frequency)).float()


@dataclass
class JudgeTraining:
    """What training a judge took: steps, seconds, the last 50 steps' mean loss, threads."""

    steps: int
    seconds: float
    final_loss: float
    threads: int = field(default_factory=torch.get_num_threads)


def train_judge(
    dataset: SegmentationDataset,
    config: JudgeConfig,
    key: str = "",
    progress: Callable[[Iterable[Any]], Iterable[Any]] = lambda it: it,
) -> Judge:
    """Train a judge on every sample of ``dataset`` (its training split) as ``config`` says; on the CPU.

    The samples are decoded once and kept in memory (uint8). Batches are drawn with the bench's training
    augmentation (random scale 1-1.5x and crop to ``config.size``, horizontal flip), the loss is cross-entropy
    weighted by :func:`class_weights`, ignoring the ignore index.
    """
    config.check()
    info = dataset.info
    samples = [dataset[i] for i in range(len(dataset))]
    if not samples:
        raise SemflowInputError(f"the {info.name} split {dataset.split!r} is empty: a judge needs training images")
    normalization = Normalization.of(s["image"] for s in samples)
    torch.manual_seed(config.seed)
    if config.pretrained is not None:
        network = load_release_weights(config.pretrained, info.num_classes, config.p, config.q)
    else:
        network = ESPNet(info.num_classes, config.p, config.q)
    judge = Judge(network, info, config, normalization, {"key": key})
    weights = class_weights([resize_label(s["label"], config.size) for s in samples], info.num_classes,
                            info.ignore_index)
    ignore = -100 if info.ignore_index is None else info.ignore_index
    optimizer = torch.optim.Adam(network.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: (1 - step / config.steps) ** 0.9)
    generator = make_generator(config.seed, 1)
    network.train()
    losses: list[float] = []
    began = time.perf_counter()
    for _ in progress(range(config.steps)):
        chosen = torch.randint(0, len(samples), (config.batch_size,), generator=generator).tolist()
        pairs = [train_transform(samples[i], config.size, generator) for i in chosen]
        images = torch.stack([p[0] for p in pairs])
        labels = torch.stack([p[1] for p in pairs])
        # Labels outside 0..K-1 other than the ignore index never occur in a checked data set; ignore them too.
        labels = torch.where((labels >= 0) & (labels < info.num_classes), labels, torch.full_like(labels, ignore))
        logits = network(normalization(images))[:, : info.num_classes]
        loss = F.cross_entropy(logits, labels, weight=weights, ignore_index=ignore)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
    network.eval()
    record = JudgeTraining(config.steps, time.perf_counter() - began, sum(losses[-50:]) / len(losses[-50:]))
    judge.record.update({"trained": True, "training": asdict(record)})
    return judge


@torch.no_grad()
def judge_miou(judge: Judge, dataset: SegmentationDataset, indices: Sequence[int] | None = None,
               size: tuple[int, int] | None = None, batch_size: int = 16) -> SegmentationScores:
    """The judge's scores on real images of ``dataset`` at their labels' size. With ``size``, each image is first
    resized to ``size`` (a synthesizer's resolution) and the judge sees it brought back to its own size."""
    judge.check_compatible(dataset.info)
    chosen = list(range(len(dataset))) if indices is None else list(indices)
    matrix = ConfusionMatrix(dataset.info.num_classes, dataset.info.ignore_index)
    for start in range(0, len(chosen), batch_size):
        batch = [dataset[i] for i in chosen[start:start + batch_size]]
        images = [s["image"].float().unsqueeze(0) / 255 for s in batch]
        if size is not None:
            images = [resize_image(x, size) for x in images]
        labels = [judge.segment(x)[0].cpu() for x in images]
        for pred, sample in zip(labels, batch):
            matrix.update(resize_label(pred, tuple(sample["label"].shape)), sample["label"])
    return matrix.scores()


def release_judge(path: str | Path, dataset: SegmentationDataset, size: tuple[int, int]) -> Judge:
    """The ESPNet release's weights as they are (no training), normalised as calibrated on ``dataset`` (the
    training split), segmenting at ``size``: the extra, pretrained judge (CamVid)."""
    config = JudgeConfig(size=tuple(size), steps=1, pretrained=str(path))  # type: ignore[arg-type]
    config.check()
    network = load_release_weights(path, dataset.info.num_classes, config.p, config.q).eval()
    normalization = Normalization.of(dataset[i]["image"] for i in range(len(dataset)))
    return Judge(network, dataset.info, config, normalization, {"trained": False, "sha256": sha256_file(path)})


def obtain_judge(
    dataset: SegmentationDataset,
    config: JudgeConfig,
    folder: str | Path | None = None,
    progress: Callable[[Iterable[Any]], Iterable[Any]] = lambda it: it,
    log: Callable[[str], None] = print,
) -> tuple[Judge, Path]:
    """The judge of ``dataset`` (its training split) made as ``config`` says: reused from
    ``folder/<data set>-<key[:16]>`` where it exists, else trained and saved there (written beside it and renamed
    into place, so a folder is whole or absent). ``folder`` defaults to :func:`default_judges_folder`."""
    config.check()
    if config.pretrained is not None and not Path(config.pretrained).is_file():
        raise SemflowInputError(f"judge weights {config.pretrained} do not exist; expected a local ESPNet release "
                                "file (nothing is downloaded), or no weights to train the judge from scratch")
    root = Path(folder) if folder is not None else default_judges_folder()
    key = judge_key(config, data_fingerprint(dataset))
    target = root / f"{dataset.info.name}-{key[:16]}"
    if (target / CONFIG_FILE).is_file():
        log(f"semflow judge: reusing {target}")
        judge = Judge.load(target)
        judge.check_compatible(dataset.info, where=f"the judge in {target}")
        return judge, target
    log(f"semflow judge: training the {dataset.info.name} judge ({config.steps} steps at {config.size[0]}x"
        f"{config.size[1]}, {'from ' + str(config.pretrained) if config.pretrained else 'from scratch'}) into {target}")
    judge = train_judge(dataset, config, key=key, progress=progress)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root, prefix=f".{target.name}."))
    try:
        judge.save(staging)
        os.replace(staging, target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not (target / CONFIG_FILE).is_file():  # another run finished the same judge first: use either
            raise
    return judge, target


def with_scores(judge: Judge, folder: Path, split: SegmentationDataset, name: str) -> SegmentationScores:
    """The judge's real-image scores on ``split`` (all of it), stored once in its ``judge.json`` under ``name``."""
    stored = judge.record.get("real_miou", {})
    if name in stored:
        return SegmentationScores(**stored[name]) if isinstance(stored[name], dict) else stored[name]
    scores = judge_miou(judge, split)
    judge.record.setdefault("real_miou", {})[name] = asdict(scores)
    described = json.loads((folder / CONFIG_FILE).read_text())
    described["record"] = judge.record
    from semflow.io import write_text

    write_text(json.dumps(described, indent=2) + "\n", folder / CONFIG_FILE)
    return scores


__all__ = ["Judge", "JudgeConfig", "Normalization", "data_fingerprint", "judge_key", "judge_miou", "obtain_judge",
           "release_judge", "train_judge", "load_release_weights", "default_judges_folder", "replace"]

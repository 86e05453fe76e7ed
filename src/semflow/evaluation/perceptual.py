"""FID and LPIPS through torchmetrics' standard implementations, from local weight files only.

Both are an optional extra, ``pip install 'semflow[metrics]'``: FID's Inception-v3 comes from
``torch-fidelity`` and LPIPS's backbone from ``torchvision``. Nothing here downloads. A weights file is
looked up (explicit path, else an environment variable, else the torch hub cache
``$TORCH_HOME/hub/checkpoints``, ``TORCH_HOME`` defaulting to ``~/.cache/torch``); a missing one raises
:class:`MissingMetricWeights` naming the file, the paths searched, its URL and where to put it.

The files, as read from the sources of torchmetrics 1.9, torch-fidelity and torchvision:

* FID: torch-fidelity's port of the TensorFlow Inception graph,
  ``weights-inception-2015-12-05-6726825d.pth`` from :data:`FID_WEIGHTS_URL`. torch-fidelity downloads it
  into the hub cache unless given ``feature_extractor_weights_path``, which :func:`make_fid` always passes.
  pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` (the same TF weights under the same module names)
  is also accepted from the hub cache; torch-fidelity loads state dicts strictly, so a wrong file fails.
* LPIPS: torchvision's ImageNet backbone (``alexnet-owt-7be5be79.pth`` or ``vgg16-397923af.pth`` from
  ``https://download.pytorch.org/models/``), which torchvision reads from ``<hub dir>/checkpoints/``. The
  LPIPS linear layers ship inside torchmetrics (``torchmetrics/functional/image/lpips_models/<net>.pth``).

:func:`make_fid` and :func:`make_lpips` cannot be run with real weights on the development machines
(torchvision and torch-fidelity are not installed there: a torchvision wheel breaks beside their torch
build), so their tests cover only the errors; their code does no more than torchmetrics' sources require.
"""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch

from semflow.errors import SemflowInputError

if TYPE_CHECKING:
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

FID_WEIGHTS_URL = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
)


class MissingMetricDependency(SemflowInputError):
    """A package of the ``metrics`` extra (torch-fidelity, torchvision) cannot be imported."""


class MissingMetricWeights(SemflowInputError):
    """A metric's pretrained weights file is not on disk (it is never downloaded)."""


@dataclass(frozen=True)
class _WeightsFile:
    what: str
    names: tuple[str, ...]  # standard file names in the hub cache; the first is the one torch would download
    url: str
    env: str


_FID = _WeightsFile(
    "FID's Inception-v3 weights (torch-fidelity)",
    ("weights-inception-2015-12-05-6726825d.pth", "pt_inception-2015-12-05-6726825d.pth"),
    FID_WEIGHTS_URL,
    "SEMFLOW_FID_WEIGHTS",
)
_LPIPS = {
    net: _WeightsFile(f"LPIPS's {net} backbone (torchvision)", (name,), f"https://download.pytorch.org/models/{name}",
                      "SEMFLOW_LPIPS_WEIGHTS")
    for net, name in (("alex", "alexnet-owt-7be5be79.pth"), ("vgg", "vgg16-397923af.pth"))
}


def _hub_checkpoints() -> Path:
    """``<torch hub dir>/checkpoints``: where torch-fidelity and torchvision cache downloads (not created)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def _resolve(spec: _WeightsFile, path: str | Path | None) -> Path:
    """The first existing file: ``path``, else ``$env``, else the hub cache; a folder is searched for the names."""
    env = os.environ.get(spec.env)
    if path is not None:
        source, where = "the path given", Path(path).expanduser()
    elif env:
        source, where = f"${spec.env}", Path(env).expanduser()
    else:
        source, where = "the torch hub cache", _hub_checkpoints()
    in_folder = where.is_dir() or (path is None and not env)
    searched = [where / name for name in spec.names] if in_folder else [where]
    for candidate in searched:
        if candidate.is_file():
            return candidate
    raise MissingMetricWeights(
        f"{spec.what} not found: searched {', '.join(map(str, searched))} (from {source}); expected the file "
        f"{spec.names[0]}: download it from {spec.url} and save it as {_hub_checkpoints() / spec.names[0]}, "
        f"or pass its path (or a folder holding it) as the weights path or in ${spec.env}"
    )


def resolve_fid_weights(path: str | Path | None = None) -> Path:
    """The Inception weights file for FID: ``path``, else ``$SEMFLOW_FID_WEIGHTS``, else the hub cache.

    ``path`` and the variable may name the file or a folder holding it under its standard name. Never
    downloads; raises :class:`MissingMetricWeights` when no file is found.
    """
    return _resolve(_FID, path)


def resolve_lpips_backbone(net: str = "alex", path: str | Path | None = None) -> Path:
    """The torchvision backbone file for LPIPS ``net`` (``"alex"`` or ``"vgg"``), found like the FID weights.

    Looks at ``path``, else ``$SEMFLOW_LPIPS_WEIGHTS``, else the hub cache. Never downloads; raises
    :class:`MissingMetricWeights` when no file is found.
    """
    if net not in _LPIPS:
        raise SemflowInputError(f"LPIPS net {net!r} is not supported; expected one of {sorted(_LPIPS)}")
    return _resolve(_LPIPS[net], path)


def _require(module: str, package: str, metric: str) -> None:
    # RuntimeError too: a torchvision built for another torch fails at import with one.
    try:
        importlib.import_module(module)
    except (ImportError, RuntimeError) as error:
        raise MissingMetricDependency(
            f"{metric} needs the package {package!r}, which cannot be imported ({type(error).__name__}: {error}); "
            f"install the metrics extra (with a torchvision matching torch {torch.__version__}): "
            "pip install 'semflow[metrics]'"
        ) from error


def make_fid(weights: str | Path | None = None, device: torch.device | str | None = None) -> FrechetInceptionDistance:
    """torchmetrics' ``FrechetInceptionDistance`` (2048 pool features) loading a local Inception file.

    Feed it with ``metric.update(images, real=...)`` where ``images`` are float ``(B, 3, H, W)`` in
    ``[0, 1]``: it is built with ``normalize=True``, so it converts them to the uint8 ``[0, 255]`` input of
    torch-fidelity's Inception as ``(images * 255).byte()`` (truncating) and resizes them to 299 x 299.

    Args:
        weights: the weights file or its folder; ``None`` searches as :func:`resolve_fid_weights`.
        device: where to move the metric; ``None`` leaves it on the CPU.
    """
    path = resolve_fid_weights(weights)  # before the import, so a user missing both hears of the file first
    _require("torch_fidelity", "torch-fidelity", "FID")
    from torchmetrics.image.fid import FrechetInceptionDistance

    # With feature_extractor_weights_path, torch-fidelity torch.load()s this file instead of downloading.
    metric = FrechetInceptionDistance(feature=2048, normalize=True, feature_extractor_weights_path=str(path))
    return metric if device is None else metric.to(device)


def make_lpips(
    net: Literal["alex", "vgg"] = "alex",
    weights: str | Path | None = None,
    device: torch.device | str | None = None,
    reduction: Literal["none", "mean", "sum"] = "none",
) -> LearnedPerceptualImagePatchSimilarity:
    """torchmetrics' ``LearnedPerceptualImagePatchSimilarity`` with a local torchvision backbone file.

    Call it as ``metric(x, y)`` or ``metric.update(x, y)`` with float ``(N, 3, H, W)`` images in ``[0, 1]``:
    it is built with ``normalize=True``, so it maps them to ``[-1, 1]`` (``2x - 1``) before LPIPS's own
    ImageNet scaling; values outside ``[0, 1]`` raise. With the default ``reduction="none"`` (torchmetrics'
    default is ``"mean"``), ``metric(x, y)`` returns one distance per pair ``(N,)``, so the metric itself is a
    distance for :func:`semflow.evaluation.diversity.mean_pairwise_distance`; ``metric.compute()`` gives all scores.

    Args:
        net: backbone, ``"alex"`` (the LPIPS default) or ``"vgg"``.
        weights: the backbone file or its folder; ``None`` searches as :func:`resolve_lpips_backbone`.
        device: where to move the metric; ``None`` leaves it on the CPU.
        reduction: how the scores of several pairs are combined.
    """
    path = resolve_lpips_backbone(net, weights)
    _require("torchvision", "torchvision", "LPIPS")
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

    # torchmetrics builds torchvision's model with its default ImageNet weights, and torchvision takes them
    # from <hub dir>/checkpoints/<standard name> if present, else downloads. Pointing the hub dir, for the
    # construction only, at a temporary folder whose only checkpoint is a link to the resolved file makes it
    # load exactly that file, never download, and leaves the user's cache alone. torch.hub cannot unset a
    # hub dir, so the previous one is restored by value.
    with tempfile.TemporaryDirectory() as hub:
        checkpoint = Path(hub) / "checkpoints" / _LPIPS[net].names[0]
        checkpoint.parent.mkdir()
        try:
            checkpoint.symlink_to(path.resolve())
        except OSError:  # no symlinks (some Windows setups): copy instead
            shutil.copyfile(path, checkpoint)
        previous = torch.hub.get_dir()
        torch.hub.set_dir(hub)
        try:
            metric = LearnedPerceptualImagePatchSimilarity(net_type=net, reduction=reduction, normalize=True)
        finally:
            torch.hub.set_dir(previous)
    return metric if device is None else metric.to(device)

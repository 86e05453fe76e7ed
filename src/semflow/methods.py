"""What a model folder can hold: ``model.method`` to the class that trains, segments and loads it.

* ``semflow``: :class:`semflow.pipeline.SemFlowPipeline`, the rectified flow (segments and synthesizes).
* ``dsm``: :class:`semflow.diffusion_segmenter.DiffusionSegmenter`, a conditional diffusion segmenter (the
  paper's DSM baseline), sampled with diffusers' DDIM or DDPM schedulers.
* ``discriminative``: :class:`semflow.discriminative.DiscriminativeSegmenter`, per-pixel cross-entropy, one
  forward pass.

All three share the codec, palette, backbone kinds, model-folder format and :func:`semflow.evaluation.evaluate_segmentation`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from semflow.config import METHODS
from semflow.errors import SemflowInputError

if TYPE_CHECKING:
    from semflow.pipeline import SemFlowPipeline

_CLASSES = {
    "semflow": ("semflow.pipeline", "SemFlowPipeline"),
    "dsm": ("semflow.diffusion_segmenter", "DiffusionSegmenter"),
    "discriminative": ("semflow.discriminative", "DiscriminativeSegmenter"),
}
assert tuple(_CLASSES) == METHODS


def model_class(method: str) -> type[SemFlowPipeline]:
    """The class for ``method``; a clear error for unknown methods."""
    try:
        module, name = _CLASSES[method]
    except KeyError:
        raise SemflowInputError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}") from None
    return getattr(importlib.import_module(module), name)


def all_solvers() -> tuple[str, ...]:
    """Every solver name some method's ``segment`` accepts (for command-line choices)."""
    names: list[str] = []
    for method in METHODS:
        names += [s for s in model_class(method).SOLVERS if s not in names]
    return tuple(names)

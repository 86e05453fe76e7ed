"""The segmenters, siblings behind one interface (:class:`~semflow.models.base.Segmenter`).

* :mod:`~semflow.models.base`: the codec, palette, data-set info, model folder and the registry of methods.
* :mod:`~semflow.models.semflow`: :class:`SemFlowPipeline`, the rectified flow (segments and synthesizes).
* :mod:`~semflow.models.dsm`: :class:`DiffusionSegmenter`, the paper's conditional diffusion baseline.
* :mod:`~semflow.models.discriminative`: :class:`DiscriminativeSegmenter`, per-pixel cross-entropy.

Module ``semflow.models.<method>`` holds the class of ``model.method=<method>``. Names are imported lazily.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Segmenter": "base", "SegmentationOutput": "base", "model_class": "base", "all_solvers": "base",
    "SemFlowPipeline": "semflow", "SynthesisOutput": "semflow",
    "DiffusionSegmenter": "dsm", "DiscriminativeSegmenter": "discriminative",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"semflow.models.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'semflow.models' has no attribute {name!r}")

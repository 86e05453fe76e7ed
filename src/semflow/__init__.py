"""semflow: semantic segmentation and image synthesis as one rectified flow (SemFlow, NeurIPS 2024).

The science lives here (``flow/``, ``codecs/``, ``networks/``, ``data/``, ``models/``, ``evaluation/``);
the training loop (:mod:`semflow.training`) and the command line (:mod:`semflow.cli`) are layers on top. Names are imported
lazily, so ``import semflow.pseudomask`` does not pay for diffusers.
"""

from __future__ import annotations

import importlib
from typing import Any

from semflow._version import __version__

_EXPORTS = {
    "Codec": "semflow.codecs", "PixelCodec": "semflow.codecs",
    "ModelConfig": "semflow.config", "PaletteConfig": "semflow.config", "RunConfig": "semflow.config",
    "TrainConfig": "semflow.config",
    "DatasetInfo": "semflow.data", "open_dataset": "semflow.data",
    "Segmenter": "semflow.models.base", "SegmentationOutput": "semflow.models.base",
    "SemFlowPipeline": "semflow.models.semflow", "SynthesisOutput": "semflow.models.semflow",
    "DiffusionSegmenter": "semflow.models.dsm", "DiscriminativeSegmenter": "semflow.models.discriminative",
    "EvaluationResult": "semflow.evaluation.segmentation", "evaluate_segmentation": "semflow.evaluation.segmentation",
    "FeatureStatistics": "semflow.evaluation.frechet", "frechet_distance": "semflow.evaluation.frechet",
    "SynthesisResult": "semflow.evaluation.synthesis", "evaluate_synthesis": "semflow.evaluation.synthesis",
    "ConfusionMatrix": "semflow.evaluation.metrics", "SegmentationScores": "semflow.evaluation.metrics",
    "SemflowInputError": "semflow.errors",
    "Palette": "semflow.pseudomask",
    "perturb": "semflow.pseudomask",
    "make_generator": "semflow.seeding",
    "PathSample": "semflow.flow.path", "flow_matching_loss": "semflow.flow.path", "sample_path": "semflow.flow.path",
    "ODESolver": "semflow.flow.solver", "SolverOutput": "semflow.flow.solver", "time_grid": "semflow.flow.solver",
    "VelocityModel": "semflow.flow.velocity",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'semflow' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)

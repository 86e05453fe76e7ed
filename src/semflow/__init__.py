"""semflow: semantic segmentation and image synthesis as one rectified flow (SemFlow, NeurIPS 2024).

The science lives here; the command line (:mod:`semflow.cli`) is a thin layer on top. Names are imported
lazily, so ``import semflow.palette`` does not pay for diffusers.
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
    "DiffusionSegmenter": "semflow.diffusion_segmenter", "DiscriminativeSegmenter": "semflow.discriminative",
    "EvaluationResult": "semflow.evaluation", "evaluate_segmentation": "semflow.evaluation",
    "FeatureStatistics": "semflow.frechet", "frechet_distance": "semflow.frechet",
    "SynthesisResult": "semflow.synthesis_evaluation", "evaluate_synthesis": "semflow.synthesis_evaluation",
    "SemflowInputError": "semflow.errors",
    "ConfusionMatrix": "semflow.metrics", "SegmentationScores": "semflow.metrics",
    "Palette": "semflow.palette",
    "perturb": "semflow.perturbation",
    "SegmentationOutput": "semflow.pipeline", "SemFlowPipeline": "semflow.pipeline",
    "SynthesisOutput": "semflow.pipeline",
    "PathSample": "semflow.rectified_flow", "flow_matching_loss": "semflow.rectified_flow",
    "sample_path": "semflow.rectified_flow",
    "ODESolver": "semflow.solver", "SolverOutput": "semflow.solver", "time_grid": "semflow.solver",
    "VelocityModel": "semflow.velocity",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'semflow' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)

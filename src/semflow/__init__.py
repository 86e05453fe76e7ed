"""semflow: semantic segmentation and image synthesis as one rectified flow (SemFlow, NeurIPS 2024).

The science lives here; the command line (:mod:`semflow.cli`) is a thin layer on top.
"""

from semflow._version import __version__
from semflow.codecs import Codec, PixelCodec
from semflow.config import ModelConfig, PaletteConfig, RunConfig, TrainConfig
from semflow.data import DatasetInfo, open_dataset
from semflow.errors import SemflowInputError
from semflow.metrics import ConfusionMatrix, SegmentationScores
from semflow.palette import Palette
from semflow.perturbation import perturb
from semflow.pipeline import SegmentationOutput, SemFlowPipeline, SynthesisOutput
from semflow.rectified_flow import PathSample, flow_matching_loss, sample_path
from semflow.solver import ODESolver, SolverOutput, time_grid
from semflow.velocity import VelocityModel

__all__ = [
    "Codec", "ConfusionMatrix", "DatasetInfo", "ModelConfig", "ODESolver", "Palette", "PaletteConfig",
    "PathSample", "PixelCodec", "RunConfig", "SegmentationOutput", "SegmentationScores", "SemFlowPipeline",
    "SemflowInputError", "SolverOutput", "SynthesisOutput", "TrainConfig", "VelocityModel", "__version__",
    "flow_matching_loss", "open_dataset", "perturb", "sample_path", "time_grid",
]

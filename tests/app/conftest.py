"""Tiny untrained model folders of each kind (built in well under a second), and pictures to upload."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from semflow import ModelConfig, SemFlowPipeline
from semflow.data import open_dataset

from tiny import tiny_network

SIZE = 16


def build_model(folder: Path, method: str = "semflow", **config) -> Path:
    torch.manual_seed(0)
    info = open_dataset("shapes", "test").info
    pipe = SemFlowPipeline.from_config(ModelConfig(size=[SIZE, SIZE], network_args=tiny_network(method),
                                                   method=method, **config), info)
    pipe.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def semflow_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_model(tmp_path_factory.mktemp("app") / "semflow")


@pytest.fixture(scope="session")
def disc_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_model(tmp_path_factory.mktemp("app") / "disc", method="discriminative")


@pytest.fixture(scope="session")
def pipe(semflow_dir: Path) -> SemFlowPipeline:
    return SemFlowPipeline.from_pretrained(semflow_dir).eval()


@pytest.fixture(scope="session")
def disc(disc_dir: Path) -> SemFlowPipeline:
    return SemFlowPipeline.from_pretrained(disc_dir).eval()


def shapes_pair(index: int = 0, size: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """``(image uint8 (H, W, 3), label int64 (H, W))`` of the built-in shapes."""
    sample = open_dataset(f"shapes:size={size}", "val")[index]
    return sample["image"].permute(1, 2, 0).numpy().copy(), sample["label"].numpy().copy()


@pytest.fixture
def image_file(tmp_path: Path) -> Path:
    image, _ = shapes_pair()
    Image.fromarray(image).save(tmp_path / "street scene.png")
    return tmp_path / "street scene.png"


@pytest.fixture
def mask_file(tmp_path: Path) -> Path:
    _, label = shapes_pair()
    Image.fromarray(label.astype(np.uint8)).save(tmp_path / "mask.png")
    return tmp_path / "mask.png"

"""Shared fixtures: tiny models that train in a second, and the path of ../shared when it exists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

# Two UNet levels of 8 and 16 channels: a model that builds, trains and saves in well under a second.
TINY_NETWORK = {
    "block_out_channels": [8, 16],
    "down_block_types": ["DownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "UpBlock2D"],
    "norm_num_groups": 4,
    "layers_per_block": 1,
}
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def tiny_train_args(out: Path, data: str = "shapes:size=16,length=32", steps: int = 2) -> list[str]:
    """``semflow train`` arguments for a tiny model."""
    return ["train", "--data", data, "--out", str(out), "--steps", str(steps), "--size", "16", "16",
            "--batch-size", "4", "--no-progress", "--set", f"model.network_args={json.dumps(TINY_NETWORK)}",
            "--set", "train.warmup_steps=1"]


@pytest.fixture(autouse=True, scope="session")
def _cache_in_tmp(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Decoded-image caches go to a temporary folder, never the user's ~/.cache."""
    import os

    os.environ["SEMFLOW_CACHE"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model folder trained for 2 steps on 16x16 shapes."""
    from semflow.cli.main import main

    out = tmp_path_factory.mktemp("tiny") / "model"
    assert main(tiny_train_args(out)) == 0
    return out


@pytest.fixture
def shared() -> Path:
    """``../shared`` beside the checkout; skips the test on machines without it."""
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent (real data for tests ships only with the project's machines)")
    return SHARED

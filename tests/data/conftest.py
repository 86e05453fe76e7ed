"""Fixtures for the data-set tests: writers for tiny image/mask files, and the shared real samples."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

# ../shared beside the repository root: real data for tests, absent on users' machines.
SHARED = Path(__file__).resolve().parents[2].parent / "shared"


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data``, or skip the test where it is absent."""
    path = SHARED / "data"
    if not path.is_dir():
        pytest.skip(f"real data samples not found at {path} (../shared is only on developer machines and CI)")
    return path


def _save(path: Path, array: np.ndarray, **options: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array)).save(path, **options)
    return path


@pytest.fixture
def save() -> Callable[..., Path]:
    """``save(path, array)``: write uint8 ``(H, W, 3)`` RGB or ``(H, W)`` index pixels, creating folders."""
    return _save


@pytest.fixture
def random_image() -> Callable[[int, int, int], np.ndarray]:
    """``random_image(h, w, seed)``: uint8 RGB noise ``(h, w, 3)``."""
    return lambda h, w, seed=0: np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# A two-level UNet of 8 and 16 channels: builds, trains 2 steps and evaluates in about a second on a CPU.
TINY_NETWORK = {
    "block_out_channels": [8, 16],
    "down_block_types": ["DownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "UpBlock2D"],
    "norm_num_groups": 4,
    "layers_per_block": 1,
}


@pytest.fixture
def train_and_evaluate(tmp_path: Path) -> Callable[[str, str], dict]:
    """``train_and_evaluate(spec, split)``: ``semflow train`` 2 steps at 16x16, then ``semflow evaluate`` 1 step.

    Returns the saved model's ``dataset`` record and the metrics JSON.
    """

    def run(spec: str, split: str) -> dict:
        from semflow.cli.main import main

        model, metrics = tmp_path / "model", tmp_path / "metrics.json"
        # One intra-op thread: tiny convolutions gain nothing from two, and on a busy 2-core machine torch's
        # spinning threads made these 2 steps take 10 s instead of 0.3 s.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            assert main(["train", "--data", spec, "--out", str(model), "--steps", "2", "--size", "16", "16",
                         "--batch-size", "2", "--no-progress", "--set",
                         f"model.network_args={json.dumps(TINY_NETWORK)}", "--set", "train.warmup_steps=1"]) == 0
            assert main(["evaluate", "--model", str(model), "--data", spec, "--split", split, "--steps", "1",
                         "--out", str(metrics)]) == 0
        finally:
            torch.set_num_threads(threads)
        result = json.loads(metrics.read_text())
        assert 0.0 <= result["miou"]["1"] <= 1.0
        return {"dataset": json.loads((model / "semflow_config.json").read_text())["dataset"], "metrics": result}

    return run

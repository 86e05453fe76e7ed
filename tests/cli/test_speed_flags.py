"""``--dtype``, ``--channels-last`` and ``--compile`` on the inference commands."""

import numpy as np
import pytest
from PIL import Image

from semflow.cli.main import main


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(folder / f"im{i}.png")
    return folder


def pseudo_masks(folder):
    return np.stack([np.asarray(Image.open(p), dtype=np.int16) for p in sorted(folder.glob("*_color.png"))])


def test_layout_and_precision_change_the_pseudo_masks_only_by_rounding(tiny_model, images, tmp_path):
    # Euler: its final state is continuous in the network's outputs. (The model's default, snap, projects every
    # predicted end onto the classes of its head, an argmax that a 2-step model's nearly tied logits flip in bf16.)
    base = ["segment", "--model", str(tiny_model), "--steps", "3", "--solver", "euler", str(images)]
    runs = {"contiguous": ["--no-channels-last"], "channels-last": ["--channels-last"],
            "bf16": ["--dtype", "bf16", "--no-channels-last"]}
    for name, flags in runs.items():
        assert main(base + flags + ["--out", str(tmp_path / name)]) == 0
    reference = pseudo_masks(tmp_path / "contiguous")
    # Pixel levels 0..255 after rounding: the memory layout changes only the order of float sums.
    assert np.abs(pseudo_masks(tmp_path / "channels-last") - reference).max() <= 1
    # bf16 keeps 8 bits of mantissa in the products; the Euler state stays float32.
    assert np.abs(pseudo_masks(tmp_path / "bf16") - reference).mean() < 3

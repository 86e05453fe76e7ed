"""The Segment tab's functions: files identical to `semflow segment`, legend shares, overlay, trajectory strip."""

import numpy as np
import pytest
import torch
from PIL import Image

from semflow.app.segmentation import (
    STRIP_GAP, class_shares, overlay, segment_image, trajectory_strip,
)
from semflow.cli.main import main
from semflow.rendering import colorize, display_colors

from .conftest import shapes_pair


def test_files_are_the_ones_semflow_segment_writes(pipe, semflow_dir, image_file, tmp_path):
    cli_out = tmp_path / "cli"
    assert main(["segment", "--model", str(semflow_dir), "--steps", "3", "--device", "cpu", str(image_file),
                 "--out", str(cli_out)]) == 0
    image = np.asarray(Image.open(image_file).convert("RGB"))
    result = segment_image(pipe, image, "street scene", 3, "euler", tmp_path / "app")
    assert sorted(p.name for p in result.files) == sorted(p.name for p in cli_out.iterdir())
    for path in result.files:
        assert path.read_bytes() == (cli_out / path.name).read_bytes(), path.name
    # What the page shows is the same class map as the downloaded index PNG.
    assert np.array_equal(result.labels, np.asarray(Image.open(cli_out / "street scene.png")))
    assert np.array_equal(result.mask, colorize(result.labels, pipe))


def test_the_mask_is_at_the_input_size(pipe, tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (23, 41, 3), dtype=np.uint8)
    result = segment_image(pipe, image, "odd", 2, None, tmp_path)
    assert result.labels.shape == (23, 41) and result.mask.shape == (23, 41, 3) and result.image.shape == (23, 41, 3)


def test_legend_shares_count_pixels(pipe):
    labels = np.zeros((4, 5), dtype=np.int64)
    labels[0, :] = 3
    labels[1, :2] = 1
    rows = class_shares(labels, pipe)
    assert [r.name for r in rows] == list(pipe.dataset.class_names)
    assert [r.share for r in rows] == pytest.approx([13 / 20, 2 / 20, 0, 5 / 20, 0])
    assert [r.color for r in rows] == [tuple(c) for c in display_colors(pipe).tolist()]


def test_overlay_blends_from_image_to_mask():
    image = np.full((2, 2, 3), 200, dtype=np.uint8)
    mask = np.zeros((2, 2, 3), dtype=np.uint8)
    assert np.array_equal(overlay(image, mask, 0.0), image)
    assert np.array_equal(overlay(image, mask, 1.0), mask)
    assert overlay(image, mask, 0.25)[0, 0, 0] == 150


@pytest.mark.parametrize("steps, frames", [(3, 4), (10, 11), (50, 11)])
def test_trajectory_strip_shows_first_last_and_at_most_eleven_frames(steps, frames):
    h, w = 16, 12
    trajectory = torch.stack([torch.full((3, h, w), float(j)) for j in range(steps + 1)])  # frame j is level j
    strip = trajectory_strip(trajectory)
    f = strip.shape[0] // h  # enlarged by a whole factor to >= 96 pixels
    assert strip.shape[0] >= 96 and strip.shape[0] % h == 0
    assert strip.shape[1] == frames * w * f + (frames - 1) * STRIP_GAP
    lefts = [k * (w * f + STRIP_GAP) for k in range(frames)]
    levels = [int(strip[0, x, 0]) for x in lefts]
    assert levels[0] == 0 and levels[-1] == steps and levels == sorted(levels)


def test_one_pass_models_segment_too(disc, tmp_path):
    image, _ = shapes_pair()
    result = segment_image(disc, image, "x", 25, None, tmp_path)
    assert result.labels.shape == (20, 20) and result.strip.ndim == 3
    assert {p.name for p in result.files} == {"x.png", "x_color.png", "x_vis.png"}

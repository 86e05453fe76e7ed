"""The Synthesize tab's functions: canvas <-> classes, K samples by seed, segment-back mIoU."""

import numpy as np
import pytest
import torch
from PIL import Image

from semflow.app.synthesis import (
    blank_canvas, canvas_size, mask_from_canvas, mask_to_canvas, segment_back, synthesize_samples,
)
from semflow.cli.main import main
from semflow.errors import SemflowInputError
from semflow.models.base import SegmentationOutput
from semflow.rendering import display_colors

from .conftest import SIZE, shapes_pair


def test_canvas_round_trip_gives_the_mask_back(pipe):
    _, label = shapes_pair(size=SIZE)
    labels = torch.from_numpy(label)
    canvas = mask_to_canvas(labels, pipe)
    assert canvas.shape == (*canvas_size(pipe), 3) and canvas_size(pipe) == (384, 384)
    read = mask_from_canvas(canvas, pipe)
    assert torch.equal(read[:: 384 // SIZE, :: 384 // SIZE], labels)


def test_brush_edges_take_the_nearer_class_and_transparent_is_class_zero(pipe):
    colors = display_colors(pipe).astype(np.float64)
    canvas = np.zeros((1, 4, 4), dtype=np.uint8)
    canvas[0, 0, :3] = colors[2]
    canvas[0, 1, :3] = np.rint(0.8 * colors[2] + 0.2 * colors[0])  # an anti-aliased stroke edge
    canvas[0, 2, :3] = np.rint(0.2 * colors[2] + 0.8 * colors[0])
    canvas[0, 3, :3] = colors[4]
    canvas[..., 3] = 255
    assert mask_from_canvas(canvas, pipe).tolist() == [[2, 2, 0, 4]]
    canvas[0, 3, 3] = 0  # erased: unpainted
    assert mask_from_canvas(canvas, pipe).tolist() == [[2, 2, 0, 0]]
    assert mask_from_canvas(blank_canvas(pipe), pipe).unique().tolist() == [0]


def test_canvas_of_the_wrong_shape_is_a_clear_error(pipe):
    with pytest.raises(SemflowInputError, match="expected an RGB or RGBA picture"):
        mask_from_canvas(np.zeros((5, 5)), pipe)


def test_samples_differ_and_the_seed_reproduces_them(pipe):
    labels = torch.from_numpy(shapes_pair(size=SIZE)[1])
    a = synthesize_samples(pipe, labels, 3, seed=7, steps=2, solver="euler")
    b = synthesize_samples(pipe, labels, 3, seed=7, steps=2, solver="euler")
    c = synthesize_samples(pipe, labels, 3, seed=8, steps=2, solver="euler")
    assert a.shape == (3, SIZE, SIZE, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert not np.array_equal(a[0], a[1]) and not np.array_equal(a[1], a[2])


def test_the_seed_gives_the_images_semflow_synthesize_writes(pipe, semflow_dir, tmp_path):
    label = shapes_pair(size=SIZE)[1]
    Image.fromarray(label.astype(np.uint8)).save(tmp_path / "mask.png")
    assert main(["synthesize", "--model", str(semflow_dir), "--device", "cpu", "--steps", "3", "--samples", "2",
                 "--seed", "5", str(tmp_path / "mask.png"), "--out", str(tmp_path / "cli")]) == 0
    app = synthesize_samples(pipe, torch.from_numpy(label), 2, seed=5, steps=3, solver="euler")
    for k in range(2):
        assert np.array_equal(app[k], np.asarray(Image.open(tmp_path / "cli" / f"mask_{k}.png"))), k


def test_baselines_cannot_synthesize(disc, pipe):
    assert pipe.can_synthesize and not disc.can_synthesize
    with pytest.raises(SemflowInputError, match="discriminative model only segments"):
        synthesize_samples(disc, torch.zeros(4, 4, dtype=torch.long), 1, 0, 1, None)


def test_segment_back_scores_each_sample_against_the_mask(pipe, monkeypatch):
    target = torch.zeros(SIZE, SIZE, dtype=torch.long)
    target[:, SIZE // 2:] = 1
    perfect, all_zero = target.clone(), torch.zeros_like(target)
    monkeypatch.setattr(pipe, "segment", lambda images, steps, solver: SegmentationOutput(
        labels=torch.stack([perfect, all_zero]), pseudo_mask=torch.zeros(2, 3, SIZE, SIZE)))
    back = segment_back(pipe, np.zeros((2, SIZE, SIZE, 3), dtype=np.uint8), target, 5, "euler")
    # Sample 1: class 0 IoU = 1/2, class 1 IoU = 0 -> mIoU 1/4.
    assert [b.miou for b in back] == pytest.approx([1.0, 0.25])
    assert back[0].mask.shape == (SIZE, SIZE, 3)

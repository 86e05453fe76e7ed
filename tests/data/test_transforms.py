"""``train_transform`` sees the geometry ``eval_transform`` gives: the whole image at the model's aspect ratio."""

from __future__ import annotations

import torch

from semflow.data.transforms import eval_transform, resize_image, resize_label, train_transform


def _sample(height: int, width: int) -> dict[str, torch.Tensor]:
    """A 4:3 (or any) image with distinct pixels and a label of four quadrants, classes 0..3."""
    image = torch.arange(3 * height * width, dtype=torch.float32).reshape(3, height, width) % 256
    label = torch.zeros(height, width, dtype=torch.int64)
    label[: height // 2, width // 2 :] = 1
    label[height // 2 :, : width // 2] = 2
    label[height // 2 :, width // 2 :] = 3
    return {"image": image.to(torch.uint8), "label": label}


def test_at_factor_one_the_training_input_is_the_evaluation_input():
    """A 12x16 photo for a square 8x8 model: no zoom and no flip gives the whole photo squeezed to 8x8, exactly what
    evaluation feeds the model, with every class of the label still there (a crop to the photo's aspect would
    cut a quarter of each side off)."""
    sample = _sample(12, 16)
    image, label = train_transform(sample, (8, 8), torch.Generator().manual_seed(0), scale=(1.0, 1.0), flip=False)
    assert torch.equal(image, eval_transform(sample, (8, 8)))
    assert torch.equal(label, resize_label(sample["label"], (8, 8)))
    assert set(label.unique().tolist()) == {0, 1, 2, 3}


def test_a_zoom_is_a_window_of_the_squeezed_photo():
    """At factor 2 the output is one 8x8 window of the photo resized to 16x16 (not to 16x21, its own aspect), the
    label the same window of the label resized by nearest neighbour."""
    sample = _sample(12, 16)
    for seed in range(5):
        image, label = train_transform(sample, (8, 8), torch.Generator().manual_seed(seed), scale=(2.0, 2.0),
                                       flip=False)
        big = resize_image(sample["image"].float() / 255.0, (16, 16))
        big_label = resize_label(sample["label"], (16, 16))
        windows = [(top, left) for top in range(9) for left in range(9)
                   if torch.equal(big[:, top : top + 8, left : left + 8], image)]
        assert len(windows) == 1
        top, left = windows[0]
        assert torch.equal(big_label[top : top + 8, left : left + 8], label)


def test_resizing_stays_within_the_images_range():
    """Antialiased bilinear weights are a mean, but their float sum can exceed 1: without the clamp a white CamVid
    crop came out at 1 + 1e-7, which the library's [0, 1] image check refuses."""
    torch.manual_seed(0)
    image = torch.rand(4, 3, 720, 960)
    image[:, :, :100] = 1.0
    for size in [(48, 64), (96, 128), (37, 51), (1000, 1300)]:
        out = resize_image(image, size)
        assert out.shape[-2:] == size and float(out.min()) >= 0.0 and float(out.max()) <= 1.0

"""The decoded-array cache: same content as resizing the source, reused when unchanged, rebuilt when not."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from semflow.data import open_dataset
from semflow.data.cache import DecodedCache, cached_size
from semflow.data.transforms import resize_image, resize_label


@pytest.mark.parametrize(("hw", "min_size", "scale", "expected"),
                         [((40, 60), (8, 8), 1.5, (12, 18)), ((40, 60), (32, 32), 1.5, (40, 60)),
                          ((100, 50), (10, 20), 1.0, (40, 20)), ((7, 7), (8, 8), 1.5, (7, 7))])
def test_cached_size_covers_the_largest_crop_and_never_grows(hw, min_size, scale, expected):
    h, w = cached_size(*hw, min_size, scale)
    assert (h, w) == expected
    assert (h >= min_size[0] * scale and w >= min_size[1] * scale) or (h, w) == hw


def make_source(root, save, random_image):
    for i in range(3):
        save(root / "train" / f"{i}.png", random_image(40, 60, i))
        save(root / "trainannot" / f"{i}.png", (np.arange(2400).reshape(40, 60) // 7 % 12).astype(np.uint8))
    return open_dataset(f"camvid:{root}", "train")


def test_cache_holds_the_shrunk_samples(tmp_path, save, random_image):
    source = make_source(tmp_path / "data", save, random_image)
    cache = DecodedCache.build(source, tmp_path / "cache", min_size=(8, 8), scale_max=1.5, workers=0)
    assert len(cache) == 3 and cache.info == source.info
    for i in range(3):
        got, original = cache[i], source[i]
        assert got["name"] == original["name"] and got["label"].dtype == torch.int64
        expected_image = resize_image(original["image"].float(), (12, 18)).round().clamp(0, 255).to(torch.uint8)
        assert torch.equal(got["image"], expected_image)
        assert torch.equal(got["label"], resize_label(original["label"], (12, 18)))  # nearest: labels stay labels


def test_cache_is_reused_then_rebuilt_when_a_file_changes(tmp_path, save, random_image):
    source = make_source(tmp_path / "data", save, random_image)
    first = DecodedCache.build(source, tmp_path / "cache", min_size=(8, 8), workers=0)
    again = DecodedCache.build(source, tmp_path / "cache", min_size=(8, 8), workers=0)
    assert again.folder == first.folder
    changed = np.full((40, 60), 3, np.uint8)
    save(tmp_path / "data" / "trainannot" / "1.png", changed)
    os.utime(tmp_path / "data" / "trainannot" / "1.png", ns=(1, 1))  # a different mtime, whatever the clock
    rebuilt = DecodedCache.build(source, tmp_path / "cache", min_size=(8, 8), workers=0)
    assert rebuilt.folder != first.folder
    assert set(rebuilt[1]["label"].unique().tolist()) == {3}
    assert sorted(p.name.startswith(".") for p in (tmp_path / "cache").iterdir()) == [False, False]  # no leftovers


def test_cache_in_dataloader_workers(tmp_path, save, random_image):
    source = make_source(tmp_path / "data", save, random_image)
    cache = DecodedCache.build(source, tmp_path / "cache", min_size=(8, 8), workers=2)
    cache[0]  # maps the files in this process; workers must map their own
    names = [s["name"] for s in DataLoader(cache, batch_size=None, num_workers=2)]
    assert names == ["0", "1", "2"]

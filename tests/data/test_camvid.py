"""CamVid (SegNet layout): a generated miniature, bad input, and the real copy in ../shared."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from semflow.data import open_dataset
from semflow.data.camvid import CLASS_NAMES, COLORS, IGNORE_INDEX
from semflow.errors import SemflowInputError


def make_camvid(root: Path, save, random_image, absolute_lists: bool = True) -> dict[str, np.ndarray]:
    """Two train pairs and one val pair, 8x6 pixels; labels cover 0..11. Returns the labels by name."""
    labels = {}
    for split, names in (("train", ["a", "b"]), ("val", ["c"])):
        lines = []
        for i, name in enumerate(names):
            label = (np.arange(48).reshape(6, 8) + i) % 12
            save(root / split / f"{name}.png", random_image(6, 8, i))
            save(root / f"{split}annot" / f"{name}.png", label.astype(np.uint8))
            labels[name] = label
            prefix = "/SegNet/CamVid/" if absolute_lists else ""
            lines.append(f"{prefix}{split}/{name}.png {prefix}{split}annot/{name}.png")
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return labels


def test_miniature_loads_pairs_in_list_order(tmp_path, save, random_image):
    labels = make_camvid(tmp_path, save, random_image)
    ds = open_dataset(f"camvid:{tmp_path}", "train")
    assert len(ds) == 2 and [ds[i]["name"] for i in range(2)] == ["a", "b"]
    sample = ds[1]
    assert sample["image"].dtype == torch.uint8 and sample["image"].shape == (3, 6, 8)
    assert sample["label"].dtype == torch.int64
    np.testing.assert_array_equal(sample["label"].numpy(), labels["b"])  # identity: stored value = class
    assert ds.info.class_names == CLASS_NAMES and ds.info.ignore_index == 11 and ds.info.colors == COLORS
    assert len(open_dataset(f"camvid:{tmp_path}", "val")) == 1


def test_without_list_files_pairs_folders_by_name(tmp_path, save, random_image):
    make_camvid(tmp_path, save, random_image)
    for split in ("train", "val"):
        (tmp_path / f"{split}.txt").unlink()
    ds = open_dataset(f"camvid:{tmp_path}", "train")
    assert [ds[i]["name"] for i in range(len(ds))] == ["a", "b"]


def test_undefined_label_value_names_file_and_value(tmp_path, save, random_image):
    make_camvid(tmp_path, save, random_image)
    bad = np.zeros((6, 8), np.uint8)
    bad[2, 3] = 12  # one past the ignore index
    save(tmp_path / "trainannot" / "b.png", bad)
    ds = open_dataset(f"camvid:{tmp_path}", "train")  # opening stays cheap: no pixel is read
    ds[0]
    with pytest.raises(SemflowInputError, match=r"trainannot/b\.png holds label value\(s\) 12 \(first at x=3, y=2"):
        ds[1]


def test_missing_mask_is_an_error_or_a_listed_skip(tmp_path, save, random_image):
    make_camvid(tmp_path, save, random_image, absolute_lists=False)
    (tmp_path / "trainannot" / "a.png").unlink()
    with pytest.raises(SemflowInputError, match=r"lists .*a\.png.* but its mask .*trainannot/a\.png does not exist"):
        open_dataset(f"camvid:{tmp_path}", "train")
    ds = open_dataset(f"camvid:{tmp_path}", "train", skip_bad=True)
    assert [ds[i]["name"] for i in range(len(ds))] == ["b"]
    assert ds.bad_files == [(str(tmp_path / "trainannot" / "a.png"), pytest.approx(ds.bad_files[0][1]))]


def test_skip_bad_scans_labels_and_sizes(tmp_path, save, random_image):
    make_camvid(tmp_path, save, random_image)
    save(tmp_path / "trainannot" / "a.png", np.full((6, 8), 200, np.uint8))  # undefined value
    save(tmp_path / "train" / "b.png", random_image(5, 8))  # image 8x5, mask 8x6
    with pytest.raises(SemflowInputError, match="8x5 .* but its mask .* is 8x6"):
        open_dataset(f"camvid:{tmp_path}", "train")[1]
    with pytest.raises(SemflowInputError, match="split 'train' is empty .* after leaving out 2 bad file"):
        open_dataset(f"camvid:{tmp_path}", "train", skip_bad=True)


def test_unknown_split_and_missing_folder(tmp_path, save, random_image):
    make_camvid(tmp_path, save, random_image)
    with pytest.raises(SemflowInputError, match="unknown split 'dev'"):
        open_dataset(f"camvid:{tmp_path}", "dev")
    with pytest.raises(SemflowInputError, match="neither test.txt nor the folders"):
        open_dataset(f"camvid:{tmp_path}", "test")
    with pytest.raises(SemflowInputError, match="is not a folder"):
        open_dataset(f"camvid:{tmp_path / 'nope'}", "train")


def test_real_camvid_every_file_loads_with_the_11_class_set(shared_data):
    root = shared_data / "camvid"
    expected = {"train": 367, "val": 101, "test": 233}
    seen: set[int] = set()
    for split, count in expected.items():
        ds = open_dataset(f"camvid:{root}", split)
        assert len(ds) == count
        for i in range(len(ds)):
            sample = ds[i]
            assert sample["image"].shape == (3, 120, 160)
            seen |= set(np.unique(sample["label"].numpy()).tolist())
    assert seen <= set(range(11)) | {IGNORE_INDEX}
    assert seen == set(range(12))  # every class and the ignore label occur somewhere in CamVid


@pytest.mark.slow
def test_train_and_evaluate_end_to_end(tmp_path, save, random_image, train_and_evaluate):
    make_camvid(tmp_path / "camvid", save, random_image)
    result = train_and_evaluate(f"camvid:{tmp_path / 'camvid'}", "val")
    assert result["dataset"]["name"] == "camvid" and result["dataset"]["ignore_index"] == 11
    assert result["dataset"]["colors"][0] == list(COLORS[0])

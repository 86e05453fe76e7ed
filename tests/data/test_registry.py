"""``open_dataset``: every kind is registered, specs are checked, datasets work in DataLoader workers."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from semflow.data import OPENERS, open_dataset
from semflow.data.labelmap import LabelMap, to_file_ids
from semflow.data.paired import write_bad_files
from semflow.data.transforms import train_transform
from semflow.data.base import DatasetInfo
from semflow.errors import SemflowInputError


@pytest.mark.parametrize("kind", sorted(OPENERS))
def test_every_kind_opens_or_names_what_it_needs(kind, tmp_path):
    """Each registered kind is reachable by its spec: shapes opens; the on-disk kinds ask for their folder and
    name a missing one."""
    if kind == "shapes":
        assert len(open_dataset("shapes:length=3", "train")) == 3
        return
    with pytest.raises(SemflowInputError, match=f"{kind}:PATH"):
        open_dataset(kind)
    with pytest.raises(SemflowInputError, match="nowhere"):
        open_dataset(f"{kind}:{tmp_path / 'nowhere'}")


def test_spec_errors(tmp_path):
    with pytest.raises(SemflowInputError, match="unknown data set 'pascal:x'"):
        open_dataset("pascal:x")
    with pytest.raises(SemflowInputError, match="needs a folder: --data camvid:PATH"):
        open_dataset("camvid")
    assert open_dataset("shapes:length=3", skip_bad=True).bad_files == []


def test_label_map_and_way_back():
    labels = LabelMap.from_mapping("toy", {4: 0, 9: 1, 0: 255}, expected="4, 9 and 0 (ignore)")
    np.testing.assert_array_equal(labels(np.array([[4, 9, 0]]), "m.png"), [[0, 1, 255]])
    with pytest.raises(SemflowInputError, match=r"m\.png holds label value\(s\) 5, 300 \(first at x=1, y=0; 2 pixels\)"):
        labels(np.array([[4, 5, 300]]), "m.png")
    with pytest.raises(SemflowInputError, match=r"has shape \(2, 2, 3\); expected a single-channel"):
        labels(np.zeros((2, 2, 3), np.uint8), "m.png")
    info = DatasetInfo("toy", ("a", "b"), ignore_index=255, extra={"file_ids": [4, 9], "file_ignore": 0})
    np.testing.assert_array_equal(to_file_ids(torch.tensor([[0, 1, 255]]), info), [[4, 9, 0]])
    with pytest.raises(SemflowInputError, match=r"labels \[2\]"):
        to_file_ids(np.array([2]), info)


def test_paired_dataset_pickles_and_feeds_a_dataloader(tmp_path, save, random_image):
    for split in ("train",):
        for i in range(3):
            save(tmp_path / split / f"{i}.png", random_image(12, 16, i))
            save(tmp_path / f"{split}annot" / f"{i}.png", np.full((12, 16), i, np.uint8))
    ds = open_dataset(f"camvid:{tmp_path}", "train")
    clone = pickle.loads(pickle.dumps(ds))
    assert torch.equal(clone[2]["label"], ds[2]["label"])
    g = torch.Generator().manual_seed(0)
    batch = [train_transform(ds[i], (8, 8), g) for i in range(3)]
    assert all(img.shape == (3, 8, 8) and lab.shape == (8, 8) for img, lab in batch)
    assert [set(lab.unique().tolist()) for _, lab in batch] == [{0}, {1}, {2}]  # nearest: no label mixing


def test_write_bad_files(tmp_path):
    write_bad_files([("a.png", "camvid: a.png is bad")], tmp_path / "bad_files.tsv")
    assert (tmp_path / "bad_files.tsv").read_text() == "path\treason\na.png\tcamvid: a.png is bad\n"

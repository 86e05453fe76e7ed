"""Cityscapes: labelIds to trainIds value by value, the label table against the official one, the layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from semflow.data import open_dataset
from semflow.data.cityscapes import LABEL_TABLE, label_table, make_info, make_labels, official_label_table
from semflow.data.labelmap import to_file_ids
from semflow.data.prepare import write_metas
from semflow.errors import SemflowInputError

LABELS = make_labels(LABEL_TABLE)
INFO = make_info(LABEL_TABLE)
# labelId -> trainId of the 19 evaluated classes, from the Cityscapes paper's benchmark definition.
TRAINED = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12, 26: 13,
           27: 14, 28: 15, 31: 16, 32: 17, 33: 18}


def test_label_ids_to_train_ids_value_by_value():
    stored = np.arange(34).reshape(1, 34)
    train = LABELS(stored, "m.png")[0]
    for label_id in range(34):
        assert train[label_id] == TRAINED.get(label_id, 255), label_id
    with pytest.raises(SemflowInputError, match=r"m\.png holds label value\(s\) 34, 255 .*labelIds"):
        LABELS(np.array([[7, 34, 255]]), "m.png")


def test_classes_and_the_way_back_to_label_ids():
    assert INFO.class_names[:3] == ("road", "sidewalk", "building") and INFO.class_names[-1] == "bicycle"
    assert INFO.num_classes == 19 and INFO.ignore_index == 255 and INFO.colors[0] == (128, 64, 128)
    train = np.array(sorted(TRAINED.values()) + [255])
    np.testing.assert_array_equal(to_file_ids(train, INFO), sorted(TRAINED) + [0])


def test_built_in_table_equals_the_official_one():
    official = official_label_table()
    if official is None:
        pytest.skip("cityscapesscripts is not installed (pip install cityscapesscripts) to compare against")
    assert official == LABEL_TABLE
    assert label_table() == official


def make_cityscapes(root: Path, save, random_image) -> None:
    """train: 2 frames in 2 cities, val: 1 frame; 8x4 pixels holding labelIds 0..33 and the extra gtFine files."""
    stored = np.arange(32, dtype=np.uint8).reshape(4, 8) + 2
    for split, frames in (("train", ["aachen/aachen_000000_000019", "bonn/bonn_000001_000019"]),
                          ("val", ["lindau/lindau_000000_000019"])):
        for i, frame in enumerate(frames):
            save(root / "leftImg8bit" / split / f"{frame}_leftImg8bit.png", random_image(4, 8, i))
            save(root / "gtFine" / split / f"{frame}_gtFine_labelIds.png", stored)
            save(root / "gtFine" / split / f"{frame}_gtFine_color.png", random_image(4, 8, i))  # not a mask we read


def test_miniature_official_layout(tmp_path, save, random_image):
    make_cityscapes(tmp_path, save, random_image)
    ds = open_dataset(f"cityscapes:{tmp_path}", "train")
    assert [ds[i]["name"] for i in range(len(ds))] == ["aachen_000000_000019", "bonn_000001_000019"]
    label = ds[0]["label"].numpy()
    stored = np.arange(32).reshape(4, 8) + 2
    np.testing.assert_array_equal(label, np.vectorize(lambda v: TRAINED.get(v, 255))(stored))


def test_metas_written_then_used(tmp_path, save, random_image):
    make_cityscapes(tmp_path, save, random_image)
    report = write_metas("cityscapes", tmp_path, check=True)
    assert report.counts == {"train": 2, "val": 1}
    assert (tmp_path / "metas" / "train.txt").read_text() == "aachen/aachen_000000_000019\nbonn/bonn_000001_000019\n"
    (tmp_path / "metas" / "train.txt").write_text("bonn/bonn_000001_000019\n")  # a subset, as the authors allow
    ds = open_dataset(f"cityscapes:{tmp_path}", "train")
    assert len(ds) == 1 and ds[0]["name"] == "bonn_000001_000019"


def test_missing_label_file(tmp_path, save, random_image):
    make_cityscapes(tmp_path, save, random_image)
    (tmp_path / "gtFine" / "val" / "lindau" / "lindau_000000_000019_gtFine_labelIds.png").unlink()
    with pytest.raises(SemflowInputError, match="lindau_000000_000019_leftImg8bit.png has no mask"):
        open_dataset(f"cityscapes:{tmp_path}", "val")
    with pytest.raises(SemflowInputError, match="split 'val' is empty"):
        open_dataset(f"cityscapes:{tmp_path}", "val", skip_bad=True)


@pytest.mark.slow
def test_train_and_evaluate_end_to_end(tmp_path, save, random_image, train_and_evaluate):
    make_cityscapes(tmp_path / "city", save, random_image)
    result = train_and_evaluate(f"cityscapes:{tmp_path / 'city'}", "val")
    assert result["dataset"]["class_names"][0] == "road" and result["dataset"]["extra"]["file_ids"][0] == 7

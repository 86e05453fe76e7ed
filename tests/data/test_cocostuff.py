"""COCO-Stuff: 182 stored ids to 171 classes and back, value by value; miniature layout; real samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from semflow.data import open_dataset
from semflow.data.cocostuff import CLASS_NAMES, ID_NAMES, INFO, LABELS, UNUSED_IDS, USED_IDS
from semflow.data.labelmap import to_file_ids
from semflow.data.prepare import write_metas
from semflow.errors import SemflowInputError


def test_171_classes_from_182_ids():
    assert len(ID_NAMES) == 182 and len(CLASS_NAMES) == 171 and len(set(CLASS_NAMES)) == 171
    # COCO category ids never used (12 street sign, 26 hat, 29 shoe, 30 eye glasses, 45 plate, 66 mirror,
    # 68 window, 69 desk, 71 door, 83 blender, 91 hair brush), minus one.
    assert UNUSED_IDS == (11, 25, 28, 29, 44, 65, 67, 68, 70, 82, 90)
    assert INFO.num_classes == 171 and INFO.ignore_index == 255


@pytest.mark.parametrize(
    ("stored", "label", "name"),
    [(0, 0, "person"), (10, 10, "fire hydrant"), (12, 11, "stop sign"), (26, 24, "backpack"), (30, 26, "handbag"),
     (45, 40, "wine glass"), (66, 60, "dining table"), (69, 61, "toilet"), (71, 62, "tv"), (83, 73, "book"),
     (89, 79, "toothbrush"), (91, 80, "banner"), (95, 84, "building-other"), (156, 145, "sky-other"),
     (181, 170, "wood"), (255, 255, None)],
)
def test_stored_id_to_class_by_hand(stored, label, name):
    got = LABELS(np.array([[stored]]), "x.png")
    assert int(got[0, 0]) == label
    if name is not None:
        assert CLASS_NAMES[label] == name and ID_NAMES[stored] == name


def test_every_id_maps_to_its_class_and_back():
    used = np.array(USED_IDS + (255,)).reshape(1, -1)
    labels = LABELS(used, "x.png")
    np.testing.assert_array_equal(labels[0, :-1], np.arange(171))  # used ids, in order, are 0..170
    np.testing.assert_array_equal(to_file_ids(labels, INFO), used)  # and back, 255 included
    for stored in UNUSED_IDS + (182, 254):
        with pytest.raises(SemflowInputError, match=rf"x\.png holds label value\(s\) {stored} "):
            LABELS(np.array([[0, stored]]), "x.png")


def make_cocostuff(root: Path, save, random_image, metas: bool = True) -> None:
    """train: 2 pairs, val: 1 pair, 6x5 pixels, with stored ids 0, 12, 181, 255."""
    stored = np.array([[0, 12, 181, 255, 91, 0]] * 5, np.uint8)
    for split, ids in (("train", ["000000000001", "000000000002"]), ("val", ["000000000003"])):
        for i, key in enumerate(ids):
            save(root / f"{split}2017" / f"{key}.jpg", random_image(5, 6, i), quality=95)
            save(root / "annotations" / f"{split}2017" / f"{key}.png", stored)
        if metas:
            (root / "metas").mkdir(exist_ok=True)
            (root / "metas" / f"{split}.txt").write_text("\n".join(ids) + "\n")


def test_miniature_maps_ids_when_read(tmp_path, save, random_image):
    make_cocostuff(tmp_path, save, random_image)
    ds = open_dataset(f"cocostuff:{tmp_path}", "train")
    assert len(ds) == 2 and ds[0]["name"] == "000000000001"
    np.testing.assert_array_equal(ds[0]["label"][0].numpy(), [0, 11, 170, 255, 80, 0])
    assert ds[0]["image"].shape == (3, 5, 6)
    assert len(open_dataset(f"cocostuff:{tmp_path}", "val")) == 1


def test_unused_id_in_a_mask_names_file_and_value(tmp_path, save, random_image):
    make_cocostuff(tmp_path, save, random_image)
    bad = tmp_path / "annotations" / "train2017" / "000000000002.png"
    save(bad, np.full((5, 6), 25, np.uint8))
    ds = open_dataset(f"cocostuff:{tmp_path}", "train")
    with pytest.raises(SemflowInputError, match=rf"{bad} holds label value\(s\) 25 .*not the unused 11, 25"):
        ds[1]
    ds = open_dataset(f"cocostuff:{tmp_path}", "train", skip_bad=True)
    assert len(ds) == 1 and ds.bad_files[0][0] == str(bad)


def test_missing_metas_points_to_prepare_and_prepare_writes_them(tmp_path, save, random_image):
    make_cocostuff(tmp_path, save, random_image, metas=False)
    with pytest.raises(SemflowInputError, match="semflow prepare cocostuff"):
        open_dataset(f"cocostuff:{tmp_path}", "train")
    report = write_metas("cocostuff", tmp_path, check=True)
    assert report.counts == {"train": 2, "val": 1} and report.bad_files == []
    assert (tmp_path / "metas" / "train.txt").read_text() == "000000000001\n000000000002\n"
    assert len(open_dataset(f"cocostuff:{tmp_path}", "train")) == 2


def test_prepare_refuses_an_image_without_mask_and_writes_nothing(tmp_path, save, random_image):
    make_cocostuff(tmp_path, save, random_image, metas=False)
    orphan = save(tmp_path / "val2017" / "000000000009.jpg", random_image(5, 6), quality=95)
    with pytest.raises(SemflowInputError, match=rf"image {orphan} has no mask"):
        write_metas("cocostuff", tmp_path)
    assert not (tmp_path / "metas").exists()
    report = write_metas("cocostuff", tmp_path, skip_bad=True)
    assert report.counts == {"train": 2, "val": 1} and [p for p, _ in report.bad_files] == [str(orphan)]


def test_real_sample_every_file_loads_with_the_171_class_set(shared_data):
    root = shared_data / "cocostuff-sample"
    total = 0
    for split, count in (("train", 13), ("val", 8)):
        ds = open_dataset(f"cocostuff:{root}", split)
        assert len(ds) == count and ds.scan() == []
        for i in range(len(ds)):
            sample = ds[i]
            labels = set(np.unique(sample["label"].numpy()).tolist())
            assert labels <= set(range(171)) | {255}
            assert sample["image"].shape[1:] == sample["label"].shape
            # The classes are exactly the stored ids mapped: read the file's ids back.
            back = set(to_file_ids(np.array(sorted(labels)), INFO).tolist())
            assert back == set(np.unique(np.asarray(Image.open(ds.pairs[i].mask))).tolist())
            total += 1
    assert total == 21


@pytest.mark.slow
def test_train_and_evaluate_end_to_end(tmp_path, save, random_image, train_and_evaluate):
    make_cocostuff(tmp_path / "coco", save, random_image)
    result = train_and_evaluate(f"cocostuff:{tmp_path / 'coco'}", "val")
    assert len(result["dataset"]["class_names"]) == 171
    assert result["dataset"]["extra"]["file_ids"] == list(USED_IDS)  # the way back to COCO ids is kept

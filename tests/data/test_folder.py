"""Users' own folders: layouts, classes.json, index and colour masks, and every kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from semflow.data import open_dataset
from semflow.data.folder import read_classes
from semflow.errors import SemflowInputError

CLASSES = {
    "classes": [{"name": "background", "color": [0, 0, 0]}, {"name": "cat", "color": [255, 0, 0]},
                {"name": "dog", "color": [0, 0, 255]}],
    "ignore_index": 255,
    "ignore_color": [255, 255, 255],
}
INDEX = np.array([[0, 1, 2, 255]] * 3, np.uint8)  # 4x3 index mask
COLOR = np.array([[(0, 0, 0), (255, 0, 0), (0, 0, 255), (255, 255, 255)]] * 3, np.uint8)  # the same, in colours


def make_folder(root: Path, save, random_image, layout: str = "flat", classes: dict | None = None) -> None:
    """Two pairs per split: one index mask (``a``), one colour mask (``b``, nested in ``sub/``)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "classes.json").write_text(json.dumps(classes or CLASSES))
    splits = {"flat": [""], "images-split": ["train", "val"], "split-images": ["train", "val"]}[layout]
    for split in splits:
        if layout == "split-images":
            image_dir, mask_dir = root / split / "images", root / split / "masks"
        else:
            image_dir, mask_dir = root / "images" / split, root / "masks" / split
        save(image_dir / "a.jpg", random_image(3, 4), quality=95)
        save(mask_dir / "a.png", INDEX)
        save(image_dir / "sub" / "b.png", random_image(3, 4, 1))
        save(mask_dir / "sub" / "b.png", COLOR)


@pytest.mark.parametrize("layout", ["flat", "images-split", "split-images"])
def test_layouts_index_and_colour_masks(tmp_path, save, random_image, layout):
    make_folder(tmp_path, save, random_image, layout)
    ds = open_dataset(f"folder:{tmp_path}", "val")
    assert [ds[i]["name"] for i in range(len(ds))] == ["a", "sub__b"]
    np.testing.assert_array_equal(ds[0]["label"].numpy(), INDEX)  # index mask: stored value = class
    np.testing.assert_array_equal(ds[1]["label"].numpy(), INDEX)  # colour mask: the same classes
    assert ds.info.class_names == ("background", "cat", "dog") and ds.info.ignore_index == 255
    assert ds.info.colors == ((0, 0, 0), (255, 0, 0), (0, 0, 255))


def test_flat_folder_without_splits_serves_every_split(tmp_path, save, random_image, caplog):
    make_folder(tmp_path, save, random_image)
    assert len(open_dataset(f"folder:{tmp_path}", "train")) == 2
    assert "no train/ val/ test/ split" in caplog.text


def test_missing_split(tmp_path, save, random_image):
    make_folder(tmp_path, save, random_image, "images-split")
    with pytest.raises(SemflowInputError, match="has no split 'test'; found train, val"):
        open_dataset(f"folder:{tmp_path}", "test")


def test_yaml_classes_with_names_only(tmp_path, save, random_image):
    make_folder(tmp_path, save, random_image)
    (tmp_path / "classes.json").unlink()
    (tmp_path / "classes.yaml").write_text("classes: [background, cat, dog]\nignore_index: 255\n")
    ds = open_dataset(f"folder:{tmp_path}", "train")
    np.testing.assert_array_equal(ds[0]["label"].numpy(), INDEX)
    assert ds.info.colors is None
    with pytest.raises(SemflowInputError, match=r"sub/b\.png is a colour \(RGB\) mask but classes.json gives no colours"):
        ds[1]


@pytest.mark.parametrize(
    ("content", "message"),
    [({"classes": []}, "non-empty 'classes' list"),
     ({"classes": ["a"], "colour": 1}, r"unknown key\(s\) \['colour'\]"),
     ({"classes": ["a", "a"]}, "lists a class name twice"),
     ({"classes": [{"name": "a", "color": [0, 0, 0]}, "b"]}, r"not to \['b'\]"),
     ({"classes": [{"name": "a", "color": [0, 0, 300]}]}, r"classes\[0\].color = \[0, 0, 300\]"),
     ({"classes": ["a", "b"], "ignore_index": 1}, "ignore_index=1; expected an integer from 2"),
     ({"classes": [{"name": "a", "color": [0, 0, 0]}], "ignore_color": [9, 9, 9]}, "no ignore_index")],
)
def test_classes_file_errors(tmp_path, content, message):
    (tmp_path / "classes.json").write_text(json.dumps(content))
    with pytest.raises(SemflowInputError, match=message):
        read_classes(tmp_path / "classes.json")


def test_bad_json_names_the_file(tmp_path):
    (tmp_path / "classes.json").write_text("{classes: ")
    with pytest.raises(SemflowInputError, match=r"cannot parse .*classes\.json"):
        read_classes(tmp_path / "classes.json")


def test_undefined_index_value(tmp_path, save, random_image):
    make_folder(tmp_path, save, random_image)
    save(tmp_path / "masks" / "a.png", np.array([[0, 1, 3, 3]] * 3, np.uint8))
    with pytest.raises(SemflowInputError, match=r"a\.png holds label value\(s\) 3 \(first at x=2, y=0; 6 pixels\).*expected 0\.\.2 and 255"):
        open_dataset(f"folder:{tmp_path}", "train")[0]


def test_colour_outside_tolerance(tmp_path, save, random_image):
    make_folder(tmp_path, save, random_image)
    bad = COLOR.copy()
    bad[:, 1] = (0, 255, 0)  # green is not listed
    save(tmp_path / "masks" / "sub" / "b.png", bad)
    with pytest.raises(SemflowInputError, match=r"b\.png: colour \(0, 255, 0\) at x=1, y=0"):
        open_dataset(f"folder:{tmp_path}", "train")[1]


def test_bad_pairs_error_or_listed_skip(tmp_path, save, random_image):
    make_folder(tmp_path, save, random_image)
    save(tmp_path / "images" / "lonely.png", random_image(3, 4))  # no mask
    save(tmp_path / "masks" / "ghost.png", INDEX)  # no image
    (tmp_path / "images" / "notes.txt").write_text("not an image")  # not an image file
    (tmp_path / "images" / ".DS_Store").write_bytes(b"\0")  # hidden: passed over
    save(tmp_path / "images" / "small.png", random_image(2, 4))  # size mismatch with its mask
    save(tmp_path / "masks" / "small.png", INDEX)
    (tmp_path / "images" / "broken.png").write_bytes(b"\x89PNG garbage")  # unreadable
    save(tmp_path / "masks" / "broken.png", INDEX)
    with pytest.raises(SemflowInputError, match=r"notes\.txt is not a supported image file"):
        open_dataset(f"folder:{tmp_path}", "train")
    ds = open_dataset(f"folder:{tmp_path}", "train", skip_bad=True)
    assert [ds[i]["name"] for i in range(len(ds))] == ["a", "sub__b"]
    reasons = dict(ds.bad_files)
    assert set(reasons) == {str(tmp_path / p) for p in
                            ("images/notes.txt", "images/lonely.png", "masks/ghost.png", "masks/small.png", "images/broken.png")}
    assert "has no mask" in reasons[str(tmp_path / "images" / "lonely.png")]
    assert "is 4x2 (WxH) but its mask" in reasons[str(tmp_path / "masks" / "small.png")]
    assert "cannot read image" in reasons[str(tmp_path / "images" / "broken.png")]


def test_two_images_for_one_mask_and_empty_split(tmp_path, save, random_image):
    make_folder(tmp_path, save, random_image)
    save(tmp_path / "images" / "a.png", random_image(3, 4))
    with pytest.raises(SemflowInputError, match=r"are two images for the same name 'a'"):
        open_dataset(f"folder:{tmp_path}", "train")
    for p in (tmp_path / "masks").rglob("*.png"):
        p.unlink()
    with pytest.raises(SemflowInputError, match="split 'train' is empty"):
        open_dataset(f"folder:{tmp_path}", "train", skip_bad=True)


def test_layout_errors(tmp_path, save, random_image):
    with pytest.raises(SemflowInputError, match="has no classes.json"):
        open_dataset(f"folder:{tmp_path}", "train")
    (tmp_path / "classes.json").write_text(json.dumps(CLASSES))
    with pytest.raises(SemflowInputError, match="has no images/ folder"):
        open_dataset(f"folder:{tmp_path}", "train")
    make_folder(tmp_path, save, random_image, "images-split")
    save(tmp_path / "images" / "stray.jpg", random_image(3, 4), quality=95)
    with pytest.raises(SemflowInputError, match=r"holds split folders \['train', 'val'\] and also \['stray.jpg'\]"):
        open_dataset(f"folder:{tmp_path}", "train")


@pytest.mark.slow
def test_train_and_evaluate_end_to_end(tmp_path, save, random_image, train_and_evaluate):
    make_folder(tmp_path / "mine", save, random_image, "images-split")
    result = train_and_evaluate(f"folder:{tmp_path / 'mine'}", "val")
    assert result["dataset"]["class_names"] == ["background", "cat", "dog"]
    assert result["dataset"]["colors"] == [[0, 0, 0], [255, 0, 0], [0, 0, 255]]


@pytest.mark.parametrize(("colors", "message"), [
    (((0, 0, 0), (255, 0, 0)), "2 colours for 3 classes"),
    (((0, 0, 0), (255, 0, 0), (0, 0, 256)), r"class 'dog' has colour \[0, 0, 256\]"),
])
def test_a_data_set_description_with_wrong_colours_is_refused(colors, message):
    """Whatever builds the description (a classes.json, a model folder's semflow_config.json, Python): one colour
    per class, or none (issue 23)."""
    from semflow.data.base import DatasetInfo

    with pytest.raises(SemflowInputError, match=message):
        DatasetInfo(name="pets", class_names=("background", "cat", "dog"), colors=colors)

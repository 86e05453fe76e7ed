"""CelebAMask-HQ: preparing the official download (a generated miniature), the authors' layout, the demo pair."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from semflow.data import open_dataset
from semflow.data.celebamask import CLASS_NAMES, PARTS
from semflow.data.prepare import celebamask_split, prepare_celebamask_hq
from semflow.errors import SemflowInputError
from semflow.pseudomask.palette import Palette

SIZE = 16  # mask side in the miniature (512 in the real download); images are twice as large, as there


def part_masks() -> dict[str, np.ndarray]:
    """Overlapping parts of a miniature face; merged in the standard order, later parts win."""
    masks = {name: np.zeros((SIZE, SIZE), bool) for name in ("skin", "nose", "hair", "cloth")}
    masks["skin"][2:14, 2:14] = True
    masks["nose"][6:9, 6:9] = True
    masks["hair"][0:5, :] = True  # over the top of the skin
    masks["cloth"][14:16, :] = True
    return masks


def expected_merge() -> np.ndarray:
    merged = np.zeros((SIZE, SIZE), np.uint8)
    merged[2:14, 2:14] = 1  # skin
    merged[6:9, 6:9] = 2  # nose
    merged[0:5, :] = 13  # hair
    merged[14:16, :] = 18  # cloth
    return merged


def smooth_image(side: int, seed: int) -> np.ndarray:
    """A smooth RGB image (JPEG keeps it nearly exact, so resizing can be checked): ramps with a random offset."""
    yy, xx = np.mgrid[0:side, 0:side] / side
    offset = np.random.default_rng(seed).uniform(0, 60, 3)
    return (np.stack([yy, xx, (yy + xx) / 2], axis=2) * 180 + offset).astype(np.uint8)


def make_raw(raw: Path, save, random_image, orig: dict[int, int]) -> None:
    """The official layout for faces ``orig`` (id -> CelebA orig_idx), parts split over groups like the real one."""
    lines = ["idx orig_idx orig_file"]
    for index, orig_idx in orig.items():
        save(raw / "CelebA-HQ-img" / f"{index}.jpg", smooth_image(2 * SIZE, index), quality=95)
        for i, (part, mask) in enumerate(part_masks().items()):
            pixels = mask.astype(np.uint8) * 255
            if i % 2:  # the release has both grey and RGB part masks
                pixels = np.repeat(pixels[..., None], 3, axis=2)
            save(raw / "CelebAMask-HQ-mask-anno" / str(index % 2) / f"{index:05d}_{part}.png", pixels)
        lines.append(f"{index} {orig_idx} {orig_idx + 1:06d}.jpg")
    (raw / "CelebA-HQ-to-CelebA-mapping.txt").write_text("\n".join(lines) + "\n")


ORIG = {0: 100, 1: 162770, 2: 162771, 3: 182637, 4: 182638}  # train, train, val, val, test


def test_split_thresholds():
    assert [celebamask_split(o) for o in ORIG.values()] == ["train", "train", "val", "val", "test"]


def test_prepare_makes_the_authors_layout(tmp_path, save, random_image):
    raw, out = tmp_path / "download" / "CelebAMask-HQ", tmp_path / "celeb"
    make_raw(raw, save, random_image, ORIG)
    report = prepare_celebamask_hq(raw.parent, out, size=SIZE, workers=1)  # the zip's parent folder works too
    assert report.counts == {"train": 2, "val": 2, "test": 1} and report.bad_files == []
    assert (out / "metas" / "train.txt").read_text() == "0\n1\n"
    assert (out / "metas" / "val.txt").read_text() == "2\n3\n"
    for index in ORIG:
        merged = np.asarray(Image.open(out / "CelebAMask-HQ-mergemask" / f"{index}.png"))
        np.testing.assert_array_equal(merged, expected_merge())
        image = Image.open(out / "CelebA-512-img" / f"{index}.jpg")
        assert image.size == (SIZE, SIZE) and image.mode == "RGB"
        # Area averaging: each output pixel is the mean of a 2x2 block of the (decoded) source, up to JPEG error.
        source = np.asarray(Image.open(raw / "CelebA-HQ-img" / f"{index}.jpg"), dtype=np.float64)
        blocks = source.reshape(SIZE, 2, SIZE, 2, 3).mean(axis=(1, 3))
        assert np.abs(np.asarray(image, np.float64) - blocks).mean() < 1.5
    ds = open_dataset(f"celebamask:{out}", "val")
    assert [ds[i]["name"] for i in range(len(ds))] == ["2", "3"]
    np.testing.assert_array_equal(ds[0]["label"].numpy(), expected_merge())
    assert ds.info.class_names == CLASS_NAMES and ds.info.ignore_index is None


def test_rerun_keeps_finished_files(tmp_path, save, random_image):
    raw, out = tmp_path / "raw", tmp_path / "out"
    make_raw(raw, save, random_image, {0: 1})
    prepare_celebamask_hq(raw, out, size=SIZE, workers=1)
    marker = out / "CelebAMask-HQ-mergemask" / "0.png"
    stamp = marker.stat().st_mtime_ns
    prepare_celebamask_hq(raw, out, size=SIZE, workers=1)
    assert marker.stat().st_mtime_ns == stamp
    assert not list(out.rglob("*.tmp"))


def test_bad_part_mask_stops_or_is_listed(tmp_path, save, random_image):
    raw, out = tmp_path / "raw", tmp_path / "out"
    make_raw(raw, save, random_image, {0: 1, 1: 2})
    wrong = save(raw / "CelebAMask-HQ-mask-anno" / "1" / "00001_hair.png", np.zeros((SIZE + 1, SIZE), np.uint8))
    with pytest.raises(SemflowInputError, match=rf"part mask {wrong} is 16x17; expected 16x16"):
        prepare_celebamask_hq(raw, out, size=SIZE, workers=1)
    assert not (out / "metas").exists()
    report = prepare_celebamask_hq(raw, out, size=SIZE, workers=1, skip_bad=True)
    assert report.counts["train"] == 1 and [p for p, _ in report.bad_files] == [str(wrong)]
    assert (out / "metas" / "train.txt").read_text() == "0\n"


def test_listing_problems(tmp_path, save, random_image):
    raw = tmp_path / "raw"
    make_raw(raw, save, random_image, {0: 1})
    save(raw / "CelebA-HQ-img" / "7.jpg", random_image(2 * SIZE, 2 * SIZE), quality=95)  # no parts
    save(raw / "CelebAMask-HQ-mask-anno" / "0" / "00000_beard.png", np.zeros((SIZE, SIZE), np.uint8))
    with pytest.raises(SemflowInputError, match=r"00000_beard.png is not a part mask .* \(and 1 more"):
        prepare_celebamask_hq(raw, tmp_path / "out", size=SIZE, workers=1)
    report = prepare_celebamask_hq(raw, tmp_path / "out", size=SIZE, workers=2, skip_bad=True)  # process pool
    assert report.counts["train"] == 1 and len(report.bad_files) == 2
    assert any("7.jpg has no part masks" in reason for _, reason in report.bad_files)


def test_part_order_is_the_standard_one():
    assert PARTS == ("skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear", "mouth",
                     "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth")


def authors_palette(k: int, s: int) -> list[tuple[int, int, int]]:
    """The pseudo-mask colours as the paper defines them: class index = base-k digits (m0, m1, m2), times s."""
    return [(s * m0, s * m1, s * m2) for m0 in range(k) for m1 in range(k) for m2 in range(k)]


def test_authors_demo_pair_gives_their_pseudo_mask(shared_data):
    ds = open_dataset(f"celebamask:{shared_data / 'celebamask-sample'}", "val")
    demo = next(ds[i] for i in range(len(ds)) if ds[i]["name"] == "4")
    label = demo["label"]
    assert demo["image"].shape == (3, 512, 512) and label.shape == (512, 512)
    assert set(label.unique().tolist()) <= set(range(19))
    pseudo = Palette(19, k=6, s=50).encode(label)  # (3, 512, 512) float pixel levels
    # Value by value against the paper's formula, over the whole image.
    colors = torch.tensor(authors_palette(6, 50), dtype=torch.float32)
    torch.testing.assert_close(pseudo, colors[label].permute(2, 0, 1), rtol=0, atol=0)
    # A few classes computed by hand: c -> 50 * (c // 36, c % 36 // 6, c % 6).
    for c, rgb in {0: (0, 0, 0), 1: (0, 0, 50), 2: (0, 0, 100), 13: (0, 100, 50), 17: (0, 100, 250)}.items():
        ys, xs = torch.nonzero(label == c, as_tuple=True)
        assert len(ys) > 0, CLASS_NAMES[c]
        assert pseudo[:, ys[0], xs[0]].tolist() == list(rgb)


@pytest.mark.slow
def test_prepare_then_train_and_evaluate_end_to_end(tmp_path, save, random_image, train_and_evaluate):
    from semflow.cli.main import main

    raw, out = tmp_path / "raw", tmp_path / "celeb"
    make_raw(raw, save, random_image, ORIG)
    assert main(["prepare", "celebamask-hq", str(raw), str(out), "--size", str(SIZE), "--workers", "1"]) == 0
    result = train_and_evaluate(f"celebamask:{out}", "val")
    assert result["dataset"]["class_names"] == list(CLASS_NAMES) and result["dataset"]["ignore_index"] is None

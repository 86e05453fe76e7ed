"""Reading images and masks: every failure is a SemflowInputError naming the file."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from semflow.io import image_size, read_mask, read_rgb, write_image
from semflow.errors import SemflowInputError


def test_missing_garbage_and_truncated_files(tmp_path, save, random_image):
    with pytest.raises(SemflowInputError, match=r"image .*nope\.png does not exist"):
        read_rgb(tmp_path / "nope.png")
    (tmp_path / "junk.png").write_bytes(b"not a png at all")
    with pytest.raises(SemflowInputError, match=r"cannot read mask .*junk\.png"):
        read_mask(tmp_path / "junk.png")
    with pytest.raises(SemflowInputError, match=r"cannot read image .*junk\.png"):
        image_size(tmp_path / "junk.png")
    whole = save(tmp_path / "whole.jpg", random_image(64, 64), quality=90).read_bytes()
    (tmp_path / "cut.jpg").write_bytes(whole[: len(whole) // 2])
    assert image_size(tmp_path / "cut.jpg") == (64, 64)  # the header alone is fine...
    with pytest.raises(SemflowInputError, match=r"cannot read image .*cut\.jpg: image file is truncated"):
        read_rgb(tmp_path / "cut.jpg")  # ...the pixels are not


def test_mask_modes(tmp_path, save):
    index = np.array([[0, 3], [7, 255]], np.uint8)
    assert read_mask(save(tmp_path / "l.png", index)).tolist() == index.tolist()
    palette = Image.fromarray(index, mode="L").convert("P")
    palette.putpalette([v for i in range(256) for v in (i, 0, 0)])
    palette.save(tmp_path / "p.png")
    assert read_mask(tmp_path / "p.png").tolist() == index.tolist()  # palette indices, not colours
    wide = Image.fromarray(np.array([[0, 300]], np.uint16))
    wide.save(tmp_path / "i16.png")
    assert read_mask(tmp_path / "i16.png").tolist() == [[0, 300]]
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 255
    assert read_mask(save(tmp_path / "rgba.png", rgba)).shape == (2, 2, 3)
    Image.fromarray(np.zeros((2, 2, 2), np.uint8), mode="LA").save(tmp_path / "la.png")
    with pytest.raises(SemflowInputError, match=r"la\.png has Pillow mode 'LA'"):
        read_mask(tmp_path / "la.png")


def test_grey_image_becomes_rgb(tmp_path, save):
    grey = save(tmp_path / "g.jpg", np.full((4, 5), 100, np.uint8), quality=95)
    rgb = read_rgb(grey)
    assert rgb.shape == (4, 5, 3) and rgb.dtype == np.uint8 and abs(int(rgb[0, 0, 0]) - 100) <= 1


def test_atomic_write_leaves_no_temporary_file(tmp_path):
    write_image(np.zeros((2, 3), np.uint8), tmp_path / "x" / "m.png")
    assert [p.name for p in (tmp_path / "x").iterdir()] == ["m.png"]
    with pytest.raises(SemflowInputError, match="unsupported suffix"):
        write_image(np.zeros((2, 3), np.uint8), tmp_path / "m.gif")


def test_written_files_get_the_usual_permissions(tmp_path):
    import os

    write_image(np.zeros((2, 3), np.uint8), tmp_path / "m.png")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "m.png").stat().st_mode & 0o777 == 0o666 & ~umask

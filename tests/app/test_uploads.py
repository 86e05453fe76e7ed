"""Upload limits (bytes, pixels: checked before decoding) and reading images and masks with the CLI's rules."""

import numpy as np
import pytest
import torch
from PIL import Image

from semflow.app.uploads import UploadLimits, check_upload, read_image_upload, read_mask_upload, safe_stem
from semflow.errors import SemflowInputError
from semflow.rendering import colorize

from .conftest import shapes_pair


def test_reads_an_image_as_rgb(image_file):
    image = read_image_upload(image_file, UploadLimits())
    assert image.shape == (20, 20, 3) and image.dtype == np.uint8
    assert np.array_equal(image, shapes_pair()[0])


def test_too_many_bytes_is_refused_with_the_limit(image_file):
    size = image_file.stat().st_size
    with pytest.raises(SemflowInputError, match=r"street scene\.png is .* MiB; the limit is"):
        check_upload(image_file, UploadLimits(max_bytes=size - 1))
    assert check_upload(image_file, UploadLimits(max_bytes=size)) == (20, 20)


def test_too_many_pixels_is_refused_from_the_header_alone(tmp_path, monkeypatch):
    # 6000 x 5000 black pixels compress to a few kB; decoding them would take 30 MB.
    Image.new("L", (6000, 5000)).save(tmp_path / "bomb.png")
    import semflow.app.uploads as uploads

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded a file that is over the pixel limit")

    monkeypatch.setattr(uploads, "read_rgb", no_decoding)
    with pytest.raises(SemflowInputError, match=r"bomb\.png is 6000x5000 = 30\.0 megapixels; the limit is 16\.0"):
        read_image_upload(tmp_path / "bomb.png", UploadLimits(max_pixels=16_000_000))


def test_a_broken_file_names_itself(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(SemflowInputError, match=r"cannot read image broken\.png") as err:
        read_image_upload(tmp_path / "broken.png", UploadLimits())
    assert str(tmp_path) not in str(err.value)  # the server's folders are not shown to the page


def test_index_mask_is_read_as_class_indices(mask_file, pipe):
    labels = read_mask_upload(mask_file, pipe, UploadLimits())
    assert labels.dtype == torch.int64 and torch.equal(labels, torch.from_numpy(shapes_pair()[1]))


def test_index_mask_outside_the_classes_is_refused(tmp_path, pipe):
    Image.fromarray(np.full((4, 4), 9, dtype=np.uint8)).save(tmp_path / "nine.png")
    with pytest.raises(SemflowInputError, match=r"nine\.png: mask labels \[9\] are outside the classes 0\.\.4"):
        read_mask_upload(tmp_path / "nine.png", pipe, UploadLimits())


@pytest.mark.parametrize("colours", ["display", "pseudo-mask"])
def test_colour_masks_in_display_or_palette_colours(tmp_path, pipe, colours):
    _, label = shapes_pair()
    if colours == "display":
        rgb = colorize(label, pipe)  # what the legend and NAME_vis.png show
    else:
        rgb = pipe.palette.encode(torch.from_numpy(label)).permute(1, 2, 0).byte().numpy()  # NAME_color.png
    Image.fromarray(rgb).save(tmp_path / "colour.png")
    assert torch.equal(read_mask_upload(tmp_path / "colour.png", pipe, UploadLimits()), torch.from_numpy(label))


def test_colour_mask_with_an_unknown_colour_is_refused(tmp_path, pipe):
    rgb = colorize(np.zeros((8, 8), dtype=np.int64), pipe)
    rgb[2:6, 2:6] = (128, 0, 255)  # a whole region in no class's colour
    Image.fromarray(rgb).save(tmp_path / "odd.png")
    with pytest.raises(SemflowInputError, match=r"odd\.png: colour \(128, 0, 255\) .*\(16 such pixels\).*Model card"):
        read_mask_upload(tmp_path / "odd.png", pipe, UploadLimits())


def test_safe_stem_strips_odd_characters_and_deduplicates():
    taken: set[str] = set()
    assert safe_stem("../../etc/passwd.png", taken) == "passwd"
    assert safe_stem("my photo (1).JPG", taken) == "my_photo_1"
    assert safe_stem("passwd.jpg", taken) == "passwd_2"
    assert safe_stem("....png", taken) == "image"

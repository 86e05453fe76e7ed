"""Images in the forms the ecosystem hands them over (diffusers' image-processor conventions), converted in one
place (semflow.images.as_images), and what is refused: NaN, infinities, floats outside [0, 1] (issue 23)."""

import numpy as np
import pytest
import torch
from PIL import Image

from semflow.data import open_dataset
from semflow.errors import SemflowInputError
from semflow.images import as_images


@pytest.fixture(scope="module")
def uint8_batch() -> torch.Tensor:
    """Two images as semflow's data sets return them: uint8 (3, H, W)."""
    ds = open_dataset("shapes:size=20", "val")
    return torch.stack([ds[0]["image"], ds[1]["image"]])


def forms(batch: torch.Tensor) -> dict[str, object]:
    hwc = batch.permute(0, 2, 3, 1).numpy()
    return {
        "float tensor": batch.float() / 255,
        "uint8 tensor": batch,
        "one uint8 tensor (3, H, W)": None,
        "float16 tensor": (batch.float() / 255).half(),
        "uint8 array (B, H, W, 3)": hwc,
        "float array (B, H, W, 3)": hwc.astype(np.float32) / 255,
        "list of PIL images": [Image.fromarray(a) for a in hwc],
        "list of uint8 arrays": list(hwc),
        "list of (3, H, W) tensors": list(batch),
    }


@pytest.mark.parametrize("form", list(forms(torch.zeros(1, 3, 1, 1, dtype=torch.uint8))))
def test_every_form_gives_the_same_floats(uint8_batch, form):
    value = forms(uint8_batch)[form]
    want = uint8_batch.float() / 255
    if value is None:  # a single image, no batch dimension
        value, want = uint8_batch[0], want[:1]
    got = as_images(value)
    assert got.shape == want.shape and got.is_floating_point()
    assert torch.allclose(got.float(), want, atol=1e-3 if form == "float16 tensor" else 0)


def test_grey_images_become_rgb():
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    got = as_images(grey)
    assert got.shape == (1, 3, 3, 4) and torch.equal(got[0, 0], got[0, 2])
    assert torch.equal(as_images(Image.fromarray(grey)), got)


@pytest.mark.parametrize("value, needle", [
    (torch.full((1, 3, 4, 4), float("nan")), "NaN or infinite"),
    (torch.full((1, 3, 4, 4), float("inf")), "NaN or infinite"),
    (torch.full((1, 3, 4, 4), 200.0), "levels 0..255 as floats"),
    (torch.full((1, 3, 4, 4), -0.5), "the [-1, 1] range"),
    (torch.zeros(1, 3, 4, 4, dtype=torch.int64), "dtype torch.int64"),
    (torch.zeros(1, 4, 4, 3), "channels last"),
    (np.zeros((4, 4, 5), np.uint8), "(H, W, 3)"),
    ("image.png", "a str"),
    ([], "empty list"),
    ([np.zeros((4, 4, 3), np.uint8), np.zeros((5, 4, 3), np.uint8)], "different sizes"),
])
def test_refused_inputs_say_why(value, needle):
    with pytest.raises(SemflowInputError, match=None) as err:
        as_images(value)
    assert needle in str(err.value)


def test_segment_takes_uint8_tensors_and_refuses_nan(tiny_model, uint8_batch):
    from semflow import SemFlowPipeline

    pipe = SemFlowPipeline.from_pretrained(tiny_model)
    floats = pipe.segment(uint8_batch.float() / 255, steps=2).labels
    assert torch.equal(pipe.segment(uint8_batch, steps=2).labels, floats)
    assert torch.equal(pipe.segment([Image.fromarray(a) for a in uint8_batch.permute(0, 2, 3, 1).numpy()],
                                    steps=2).labels, floats)
    with pytest.raises(SemflowInputError, match="levels 0..255 as floats"):
        pipe.segment(uint8_batch.float(), steps=2)
    with pytest.raises(SemflowInputError, match="NaN"):
        pipe.segment(torch.full((1, 3, 16, 16), float("nan")), steps=2)
    colours = pipe.scene_colors(uint8_batch)
    assert torch.equal(colours, pipe.scene_colors(uint8_batch.float() / 255))

"""``semflow.speed.speed_up``: what the inference commands' --dtype and --channels-last do to a model."""

import pytest
import torch

from semflow.errors import SemflowInputError
from semflow.models.base import Segmenter
from semflow.speed import speed_up


def test_bf16_runs_the_products_in_bf16_and_keeps_the_weights_and_state_float32(tiny_model):
    model = Segmenter.from_pretrained(tiny_model)
    images = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    # Euler: the decoded state itself (snap would project it onto the palette colours of the head's classes, where a
    # near tie of an almost untrained head flips under bf16 rounding and moves a pixel by a whole palette step).
    reference = model.segment(images, steps=2, solver="euler")
    seen = []
    handle = model.network.conv_in.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    with speed_up(model, dtype="bf16", channels_last=False):
        out = model.segment(images, steps=2, solver="euler")
    handle.remove()
    assert seen and set(seen) == {torch.bfloat16}
    assert model.network.conv_in.weight.dtype == torch.float32 and out.pseudo_mask.dtype == torch.float32
    assert (out.pseudo_mask - reference.pseudo_mask).abs().mean() < 3  # pixel levels: bf16 rounding only


@pytest.mark.parametrize("channels_last, expected", [(None, True), (True, True), (False, False)])
def test_channels_last_defaults_to_on_for_the_cpu(tiny_model, channels_last, expected):
    model = Segmenter.from_pretrained(tiny_model)
    with speed_up(model, channels_last=channels_last):
        pass
    weight = model.network.conv_in.weight
    assert weight.is_contiguous(memory_format=torch.channels_last) == expected
    assert weight.is_contiguous() != expected


def test_unknown_dtype_is_an_input_error(tiny_model):
    with pytest.raises(SemflowInputError, match="fp16"):
        speed_up(Segmenter.from_pretrained(tiny_model), dtype="fp16")

import pytest
import torch

from semflow.errors import SemflowInputError
from semflow.pseudomask.palette import IGNORE_COLOR, Palette
from semflow.pseudomask.perturbation import check_beta, perturb


def test_paper_formula_by_hand():
    p = Palette(182, k=6, s=50, ignore_index=255)
    # c = 100: m0 = 100 // 36 = 2, m1 = (100 - 72) // 6 = 4, m2 = 100 - 72 - 24 = 4
    assert p.colors[100].tolist() == [100.0, 200.0, 200.0]
    assert p.colors[0].tolist() == [0.0, 0.0, 0.0]
    assert p.colors[7].tolist() == [0.0, 50.0, 50.0]


@pytest.mark.parametrize("palette", [Palette(182, 6, 50, 255), Palette(19, 6, 50), Palette.spread(171, 255),
                                     Palette.spread(5), Palette.spread(11, 11)])
def test_round_trip_every_class_and_ignore(palette):
    labels = torch.arange(palette.num_classes).reshape(1, -1)
    rgb = palette.encode(labels)
    assert rgb.shape == (3, 1, palette.num_classes)
    assert torch.equal(palette.decode(rgb), labels)
    if palette.ignore_index is not None:
        white = palette.encode(torch.tensor([[palette.ignore_index]]))
        assert white.flatten().tolist() == list(map(float, IGNORE_COLOR))


def test_colours_are_distinct_and_in_range():
    for p in (Palette(216, 6, 50), Palette.spread(171), Palette.spread(11), Palette.spread(8)):
        c = p.colors
        assert c.min() >= 0 and c.max() <= 255
        assert len({tuple(v) for v in c.tolist()}) == p.num_classes
        d = torch.cdist(c, c) + torch.eye(p.num_classes) * 1e9
        assert d.min() == p.s


def test_spread_palette_formula():
    assert (Palette.spread(5).k, Palette.spread(5).s) == (2, 255)
    # 8 = 2^3 takes one more digit: the last class would be white, the ignore colour (issue 13); 27 = 3^3 need
    # not (its last colour is 254 levels).
    assert (Palette.spread(8).k, Palette.spread(8).s) == (3, 127)
    assert (Palette.spread(9).k, Palette.spread(9).s) == (3, 127)
    assert (Palette.spread(27).k, Palette.spread(27).s) == (3, 127)
    assert (Palette.spread(64).k, Palette.spread(64).s) == (5, 63)
    assert (Palette.spread(171).k, Palette.spread(171).s) == (6, 51)


@pytest.mark.parametrize("kwargs", [dict(num_classes=217, k=6, s=50), dict(num_classes=10, k=6, s=52),
                                    dict(num_classes=10, k=1, s=50), dict(num_classes=0),
                                    dict(num_classes=10, ignore_index=3)])
def test_invalid_palettes(kwargs):
    with pytest.raises(SemflowInputError):
        Palette(**kwargs)


def test_labels_out_of_range_are_named():
    p = Palette(5, ignore_index=None)
    with pytest.raises(SemflowInputError, match=r"\[7\]"):
        p.encode(torch.tensor([[0, 7]]))
    with pytest.raises(SemflowInputError, match="255"):
        p.encode(torch.tensor([[255]]))


def test_decode_is_chunked_and_exact(monkeypatch):
    import semflow.pseudomask.palette as palette_module

    monkeypatch.setattr(palette_module, "_CHUNK", 1000)  # many chunks, with a ragged last one
    p = Palette(182, 6, 50, 255)
    labels = torch.randint(0, 182, (2, 61, 67))
    assert torch.equal(p.decode(p.encode(labels)), labels)


def test_decode_512_with_182_classes_is_bounded():
    p = Palette(182, 6, 50, 255)
    labels = torch.randint(0, 182, (512, 512))
    assert torch.equal(p.decode(p.encode(labels)), labels)


@pytest.mark.parametrize("palette", [Palette(182, 6, 50, 255), Palette.spread(11, 11)])
def test_perturbation_never_changes_the_decoded_class(palette):
    labels = torch.randint(0, palette.num_classes, (4, 32, 32))
    beta = palette.s / 2 * 0.999
    g = torch.Generator().manual_seed(0)
    noisy = perturb(palette.encode(labels), beta, generator=g)
    assert (noisy - palette.encode(labels)).abs().max() <= beta
    assert (noisy - palette.encode(labels)).abs().max() > beta * 0.9  # the noise really spans the range
    assert torch.equal(palette.decode(noisy), labels)


def test_beta_bounds():
    check_beta(24.9, 50)
    for bad in (0.0, 25.0, 30.0, -1.0):
        with pytest.raises(SemflowInputError, match="beta"):
            check_beta(bad, 50)


def test_no_class_is_drawn_in_the_ignore_colour():
    for classes in range(1, 256):
        palette = Palette.spread(classes, ignore_index=255)
        assert not (palette.colors == torch.tensor(IGNORE_COLOR, dtype=torch.float32)).all(1).any(), classes
    assert Palette.spread(8).k == 3  # 2^3 = 8 would draw class 7 white


@pytest.mark.parametrize("classes, k, s", [(8, 2, 255), (216, 6, 51)])
def test_a_palette_that_draws_a_class_white_is_refused(classes, k, s):
    with pytest.raises(SemflowInputError, match="white"):
        Palette(classes, k=k, s=s)

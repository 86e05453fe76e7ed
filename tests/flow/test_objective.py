"""The training options of the flow: time sampling, parameterisations, the class loss, state layouts,
self-aligned states and the perturbation shapes, each against its closed form."""

import math

import pytest
import torch
from torch import nn

from semflow.config import TimeSamplingConfig
from semflow.flow.path import sample_path, sample_time
from semflow.flow.self_alignment import self_aligned_sample
from semflow.flow.state import StateLayout
from semflow.flow.velocity import VelocityModel
from semflow.losses import class_loss, palette_logits
from semflow.pseudomask.palette import Palette
from semflow.pseudomask.perturbation import perturb


def test_uniform_time_is_the_papers_single_draw():
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(sample_time(64, torch.device("cpu"), g1), torch.rand(64, generator=g2))


def test_endpoint_time_puts_the_asked_mass_on_each_end():
    sampling = dict(kind="endpoints", t0_mass=0.4, t1_mass=0.1)
    t = sample_time(200_000, torch.device("cpu"), torch.Generator().manual_seed(0), **sampling)
    assert abs(float((t == 0).float().mean()) - 0.4) < 0.005
    assert abs(float((t == 1).float().mean()) - 0.1) < 0.005
    inner = t[(t > 0) & (t < 1)]
    assert abs(float(inner.mean()) - 0.5) < 0.01  # the rest is U(0, 1)


def test_endpoint_bands_spread_each_mass_uniformly_over_its_band():
    sampling = dict(kind="endpoints", t0_mass=0.5, t1_mass=0.2, t0_width=0.1, t1_width=0.05)
    t = sample_time(200_000, torch.device("cpu"), torch.Generator().manual_seed(0), **sampling)
    assert float((t == 0).float().mean()) < 1e-4 and float((t == 1).float().mean()) < 1e-4
    # U(0, 1) puts 0.3 * 0.1 of the mass below 0.1; the band puts all of t0_mass there, uniformly.
    low = t[t < 0.1]
    assert abs(low.numel() / t.numel() - (0.5 + 0.3 * 0.1)) < 0.005
    assert abs(float(low.mean()) - 0.05) < 0.002
    high = t[t > 0.95]
    assert abs(high.numel() / t.numel() - (0.2 + 0.3 * 0.05)) < 0.005
    assert abs(float(high.mean()) - 0.975) < 0.002


def test_endpoint_time_without_bands_draws_as_before():
    # Runs saved before the bands existed replay: no band, no extra draw, the same times.
    sampling = dict(kind="endpoints", t0_mass=0.5, t1_mass=0.1)
    g, ref = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    u, choice = torch.rand(256, generator=ref), torch.rand(256, generator=ref)
    expected = torch.where(choice < 0.5, 0.0, torch.where(choice < 0.6, 1.0, u))
    assert torch.equal(sample_time(256, torch.device("cpu"), g, **sampling), expected)


@pytest.mark.parametrize("bad", [{"t0_width": -0.1}, {"t1_width": 1.5}, {"kind": "uniform", "t0_width": 0.1}])
def test_bad_time_bands_are_refused(bad):
    from semflow.errors import SemflowInputError

    with pytest.raises(SemflowInputError, match="width"):
        TimeSamplingConfig(**{"kind": "endpoints", **bad})


def test_logit_normal_time_has_its_median_at_sigmoid_mean():
    sampling = dict(kind="logit-normal", mean=1.0, std=0.5)
    t = sample_time(100_001, torch.device("cpu"), torch.Generator().manual_seed(0), **sampling)
    assert abs(float(t.median()) - 1 / (1 + math.exp(-1.0))) < 0.005
    assert float(t.min()) > 0 and float(t.max()) < 1


class Constant(nn.Module):
    """A 'network' that outputs a fixed tensor (channels as asked) whatever its input."""

    def __init__(self, out):
        super().__init__()
        self.out = out

    def forward(self, sample, timestep):
        return self.out.expand(sample.shape[0], *self.out.shape[1:])


def test_velocity_parameterization_implies_ends_on_the_line_through_the_state():
    v = torch.randn(1, 3, 4, 4)
    model = VelocityModel(Constant(v))
    z, t = torch.randn(2, 3, 4, 4), torch.tensor([0.25, 0.8])
    ends = model.endpoints(z, t)
    tb = t.view(-1, 1, 1, 1)
    torch.testing.assert_close(ends.velocity, v.expand(2, -1, -1, -1))
    torch.testing.assert_close(ends.z1 - ends.z0, ends.velocity)
    torch.testing.assert_close((1 - tb) * ends.z0 + tb * ends.z1, z)  # the state lies on the implied path
    torch.testing.assert_close(model(z, t), ends.velocity)


def test_endpoints_parameterization_reads_both_ends_and_their_difference():
    out = torch.randn(1, 6, 4, 4)
    model = VelocityModel(Constant(out), parameterization="endpoints")
    z, t = torch.randn(2, 3, 4, 4), torch.tensor([0.0, 1.0])
    ends = model.endpoints(z, t)
    torch.testing.assert_close(ends.z0, out[:, :3].expand(2, -1, -1, -1))
    torch.testing.assert_close(ends.z1, out[:, 3:].expand(2, -1, -1, -1))
    torch.testing.assert_close(model(z, t), ends.z1 - ends.z0)


def test_palette_logits_argmax_is_the_nearest_colour_decoding():
    palette = Palette.spread(7)
    colors = torch.rand(2, 3, 5, 6) * 255
    logits = palette_logits(colors / 255, palette.colors / 255, tau=0.1)
    assert logits.shape == (2, 7, 5, 6)
    assert torch.equal(logits.argmax(1), palette.decode(colors))


def test_class_loss_is_cross_entropy_on_colour_distances_skipping_the_ignore_label():
    palette = Palette.spread(5, ignore_index=255)
    labels = torch.tensor([[[0, 1], [4, 255]]])
    exact = palette.encode(labels.clamp(max=4)) / 255  # every pixel on its class colour
    small = class_loss(exact, labels, palette.colors / 255, tau=0.01, ignore_index=255)
    assert float(small) < 1e-6
    # One pixel on the wrong colour: the loss is its CE alone, averaged over the 3 labelled pixels.
    wrong = exact.clone()
    wrong[0, :, 0, 0] = palette.colors[1] / 255
    d = ((palette.colors[1] - palette.colors) / 255).pow(2).sum(1)  # distances of colour 1 to every class
    expected = (torch.logsumexp(-d / 0.01, 0) + d[0] / 0.01) / 3
    torch.testing.assert_close(class_loss(wrong, labels, palette.colors / 255, 0.01, 255), expected)
    # All pixels ignored: no signal, and no NaN.
    assert float(class_loss(exact, torch.full_like(labels, 255), palette.colors / 255, 0.1, 255)) == 0.0


@pytest.mark.parametrize("noise", [0.0, 0.5])
def test_stacked_states_keep_image_and_mask_in_their_own_channels(noise):
    layout = StateLayout("stacked", noise)
    image, mask = torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)
    g = torch.Generator().manual_seed(0)
    z0, z1 = layout.image_state(image, g), layout.mask_state(mask, g)
    assert z0.shape == (4, 6, 8, 8) and layout.channels(3) == 6
    assert torch.equal(layout.image_part(z0), image) and torch.equal(layout.mask_part(z1), mask)
    fill = layout.mask_part(z0)
    if noise == 0:
        assert torch.equal(fill, torch.zeros_like(fill))
    else:
        assert abs(float(fill.std()) - noise) < 0.05
    # Along the path the image part is untouched by the mask (and the other way round).
    t = torch.full((4,), 0.3)
    z_t = sample_path(z0, z1, t).z_t
    torch.testing.assert_close(layout.image_part(z_t), 0.7 * image + 0.3 * layout.image_part(z1))


def test_shared_states_are_the_latents_themselves():
    layout = StateLayout("shared")
    z = torch.randn(2, 4, 3, 3)
    assert layout.image_state(z) is z and layout.mask_part(z) is z and layout.channels(4) == 4


def test_self_aligned_states_lie_on_a_line_between_their_targets():
    z0, z1 = torch.randn(6, 3, 4, 4), torch.randn(6, 3, 4, 4)
    drift = torch.randn(1, 3, 4, 4)

    def velocity(z, t):  # a wrong field: the true one plus a drift
        return drift.expand_as(z) * (1 + t.view(-1, 1, 1, 1))

    sample = self_aligned_sample(velocity, z0, z1, steps=4, generator=torch.Generator().manual_seed(1))
    tb = sample.t.view(-1, 1, 1, 1)
    torch.testing.assert_close((1 - tb) * sample.z0 + tb * sample.z1, sample.z_t)
    # The far end is the truth: the mask for the segmentation half, the image for the synthesis half.
    assert torch.equal(sample.z1[:3], z1[:3]) and torch.equal(sample.z0[3:], z0[3:])
    k = round(float(sample.t[0]) * 4)
    assert 1 <= k <= 3 and torch.allclose(sample.t[3:], torch.tensor(1 - k / 4))


def test_self_aligned_states_of_the_exact_field_are_path_points():
    z0, z1 = torch.randn(4, 3, 2, 2), torch.randn(4, 3, 2, 2)

    def exact(z, t):  # each pair's true velocity, constant z1 - z0: forward calls have t < 1/2 (steps=3)
        return (z1 - z0)[:2] if float(t[0]) < 0.5 else (z1 - z0)[2:]

    sample = self_aligned_sample(exact, z0, z1, steps=3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(sample.z0, z0)
    torch.testing.assert_close(sample.z1, z1)


def test_self_aligned_snap_states_head_for_the_projected_end():
    """With a projection, the segmentation half takes snap steps: a field pointing at 0.4 from zero, projected by
    rounding, keeps those states at 0 (Euler's move to 0.4 k / N); the synthesis half is Euler either way."""
    z0, z1 = torch.zeros(4, 1, 2, 2), torch.ones(4, 1, 2, 2)

    def field(z, t):
        # From z = 0 the end it predicts, z + (1 - t) v, is 0.4 at every t < 1 (forward calls have t <= 3/4).
        return torch.full_like(z, 0.4) / (1 - t.view(-1, 1, 1, 1)).clamp_min(0.25)

    euler = self_aligned_sample(field, z0, z1, steps=4, generator=torch.Generator().manual_seed(1))
    snapped = self_aligned_sample(field, z0, z1, steps=4, generator=torch.Generator().manual_seed(1),
                                  project=torch.round)
    k = round(float(euler.t[0]) * 4)
    assert torch.equal(snapped.t, euler.t)  # the same k from the same generator
    euler_state = 0.4 / 4 * sum(1 / (1 - i / 4) for i in range(k))  # Euler steps of 1/4 with v = 0.4 / (1 - t)
    torch.testing.assert_close(euler.z_t[:2], torch.full((2, 1, 2, 2), euler_state))
    assert torch.equal(snapped.z_t[:2], torch.zeros(2, 1, 2, 2))  # each end 0.4 rounds to 0: the states stay
    torch.testing.assert_close(snapped.z_t[2:], euler.z_t[2:])
    tb = snapped.t.view(-1, 1, 1, 1)
    torch.testing.assert_close((1 - tb) * snapped.z0 + tb * snapped.z1, snapped.z_t)


def test_gaussian_perturbation_is_bounded_by_beta_with_most_mass_near_zero():
    base = torch.zeros(1, 3, 200, 200)
    noise = perturb(base, 10.0, torch.Generator().manual_seed(0), shape="gaussian")
    assert float(noise.abs().max()) <= 10.0
    assert abs(float(noise.std()) - 5.0 * 0.9205 ** 0.5) < 0.05  # N(0, 5^2) clipped at 2 sigma
    uniform = perturb(base, 10.0, torch.Generator().manual_seed(0))
    assert float(uniform.abs().max()) <= 10.0 and abs(float(uniform.std()) - 10 / 3 ** 0.5) < 0.1


def test_stacked_fills_take_their_own_noise_levels():
    from semflow.flow.state import StateLayout

    z = torch.zeros(64, 2, 8, 8)
    g = torch.Generator().manual_seed(0)
    layout = StateLayout("stacked", noise=0.1, image_noise=1.0)
    segmentation_start, synthesis_start = layout.image_state(z, g), layout.mask_state(z, g)
    # where segmentation starts, the mask part's fill is small; where synthesis starts, the image part's is large
    assert float(layout.mask_part(segmentation_start).std()) == pytest.approx(0.1, rel=0.05)
    assert float(layout.image_part(synthesis_start).std()) == pytest.approx(1.0, rel=0.05)
    same = StateLayout("stacked", noise=0.1)  # one level for both, as before
    assert float(same.image_part(same.mask_state(z, g)).std()) == pytest.approx(0.1, rel=0.05)

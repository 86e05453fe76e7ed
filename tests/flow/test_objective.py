"""The pieces of SemFlow's objective: time sampling, the implied ends, state layouts and self-aligned states,
each against its closed form."""


import pytest
import torch
from torch import nn

from semflow.flow.path import sample_path, sample_time
from semflow.flow.self_alignment import self_aligned_sample
from semflow.flow.state import StateLayout
from semflow.flow.velocity import VelocityModel


def test_uniform_time_is_the_papers_single_draw():
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(sample_time(64, torch.device("cpu"), g1), torch.rand(64, generator=g2))


def test_end_masses_put_the_asked_mass_on_each_end():
    t = sample_time(200_000, torch.device("cpu"), torch.Generator().manual_seed(0), t0_mass=0.4, t1_mass=0.1)
    assert abs(float((t == 0).float().mean()) - 0.4) < 0.005
    assert abs(float((t == 1).float().mean()) - 0.1) < 0.005
    inner = t[(t > 0) & (t < 1)]
    assert abs(float(inner.mean()) - 0.5) < 0.01 and abs(inner.numel() / t.numel() - 0.5) < 0.005  # U(0, 1)


def test_end_masses_draw_the_uniform_times_then_the_choice():
    g, ref = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    u, choice = torch.rand(256, generator=ref), torch.rand(256, generator=ref)
    expected = torch.where(choice < 0.5, 0.0, torch.where(choice < 0.6, 1.0, u))
    assert torch.equal(sample_time(256, torch.device("cpu"), g, t0_mass=0.5, t1_mass=0.1), expected)


@pytest.mark.parametrize("bad", [{"t0_mass": -0.1}, {"t1_mass": 1.5}, {"t0_mass": 0.7, "t1_mass": 0.4}])
def test_bad_end_masses_are_refused(bad):
    from semflow.config import ObjectiveConfig
    from semflow.errors import SemflowInputError

    with pytest.raises(SemflowInputError, match="mass"):
        ObjectiveConfig(**bad)


class Constant(nn.Module):
    """A 'network' that outputs a fixed tensor (channels as asked) whatever its input."""

    def __init__(self, out):
        super().__init__()
        self.out = out

    def forward(self, sample, timestep):
        return self.out.expand(sample.shape[0], *self.out.shape[1:])


def test_a_prediction_implies_ends_on_the_line_through_the_state():
    v = torch.randn(1, 3, 4, 4)
    model = VelocityModel(Constant(v))
    z, t = torch.randn(2, 3, 4, 4), torch.tensor([0.25, 0.8])
    p = model.predict(z, t)
    tb = t.view(-1, 1, 1, 1)
    torch.testing.assert_close(p.velocity, v.expand(2, -1, -1, -1))
    torch.testing.assert_close(p.z0, z - tb * p.velocity)
    torch.testing.assert_close(p.z1, z + (1 - tb) * p.velocity)
    torch.testing.assert_close((1 - tb) * p.z0 + tb * p.z1, z)  # the state lies on the implied path
    torch.testing.assert_close(model(z, t), p.velocity)
    assert p.logits is None


def test_a_head_splits_the_last_channels_off_as_logits():
    out = torch.randn(1, 3 + 5, 4, 4)
    model = VelocityModel(Constant(out), head_channels=5)
    p = model.predict(torch.randn(2, 3, 4, 4), torch.tensor([0.0, 0.5]))
    torch.testing.assert_close(p.velocity, out[:, :3].expand(2, -1, -1, -1))
    torch.testing.assert_close(p.logits, out[:, 3:].expand(2, -1, -1, -1))
    velocity, z0, z1, logits = model(torch.randn(2, 3, 4, 4), torch.tensor([0.0, 0.5]), full=True)
    assert velocity.shape == (2, 3, 4, 4) and logits.shape == (2, 5, 4, 4)


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


@pytest.mark.parametrize("noise", [0.0, 0.3])
def test_the_image_part_at_the_mask_end_is_the_fill_or_the_source_plus_its_noise(noise):
    mask, source = torch.zeros(64, 2, 8, 8), torch.randn(64, 2, 8, 8)
    filled = StateLayout("stacked", noise).mask_state(mask, torch.Generator().manual_seed(0))
    assert float(filled[:, :2].std()) == pytest.approx(noise, abs=0.01)
    flat = StateLayout("stacked", 0.1, image_noise=0.0).mask_state(mask, torch.Generator().manual_seed(0), source=source)
    assert torch.equal(flat[:, :2], source) and torch.equal(flat[:, 2:], mask)
    layout = StateLayout("stacked", 0.1, image_noise=noise)
    painted = layout.mask_state(mask, torch.Generator().manual_seed(0), source=source)
    assert float((layout.image_part(painted) - source).std()) == pytest.approx(noise, abs=0.01)
    assert torch.equal(layout.mask_part(painted), mask)


def test_the_state_mean_weighs_both_parts_equally_and_is_the_plain_mean_for_shared_states():
    values = torch.rand(3, 4, 5, 5)
    torch.testing.assert_close(StateLayout("stacked").mean(values), values.mean())
    assert torch.equal(StateLayout("shared").mean(values), 0.5 * values.mean() + 0.5 * values.mean())

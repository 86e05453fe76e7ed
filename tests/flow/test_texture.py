"""The synthesis eta chosen after training by the real images' high-frequency energy (semflow.flow.texture)."""

import pytest
import torch

from semflow import ModelConfig, SemFlowPipeline
from semflow.config import load_run_config
from semflow.data import open_dataset
from semflow.errors import SemflowInputError
from semflow.flow import texture
from semflow.flow.texture import ETAS, MASKS, SAMPLES, match_texture

from tiny import TINY_NETWORK


def checkerboard(amplitude, n=4, size=8):
    """Images whose mean absolute Laplacian is exactly ``8 * amplitude`` (interior pixels of a +-a checkerboard)."""
    sign = (torch.arange(size)[:, None] + torch.arange(size)[None, :]) % 2 * 2 - 1
    return (0.5 + amplitude * sign.float()).expand(n, 3, size, size).clone()


def test_the_eta_closest_to_the_real_energy_in_ratio_is_kept():
    real = checkerboard(0.1)
    # Samples as textured as 0.4, 0.9, 1.6 and 3 times the real images at etas 1, 0.75, 0.5, 0.
    amplitude = {1.0: 0.04, 0.75: 0.09, 0.5: 0.16, 0.0: 0.3}
    calls = []
    found = match_texture(lambda eta: calls.append(eta) or checkerboard(amplitude[eta]), real,
                          etas=(0.0, 0.5, 0.75, 1.0))
    assert calls == [0.0, 0.5, 0.75, 1.0]
    assert found.ratios == pytest.approx((3.0, 1.6, 0.9, 0.4))
    assert found.eta == 0.75
    # On a log scale: half as textured (0.5) is as far as twice (2.0); a tie goes to the larger eta.
    # (Binary fractions: the energies are exact.)
    tie = match_texture(lambda eta: checkerboard({0.0: 0.25, 1.0: 0.0625}[eta]), checkerboard(0.125), etas=(0.0, 1.0))
    assert tie.ratios == (2.0, 0.5) and tie.eta == 1.0
    assert "synthesis eta 1 matches" in tie.line() and "0: 2.00, 1: 0.50" in tie.line()


def test_flat_real_images_or_no_candidates_are_refused():
    with pytest.raises(SemflowInputError, match="no high-frequency energy"):
        match_texture(lambda eta: checkerboard(0.1), torch.full((2, 3, 8, 8), 0.5))
    with pytest.raises(SemflowInputError, match="no eta to choose from"):
        match_texture(lambda eta: checkerboard(0.1), checkerboard(0.1), etas=())


def stochastic_model(**extra):
    info = open_dataset("shapes", "test").info
    config = ModelConfig(size=[16, 16], network_args=TINY_NETWORK, state="stacked", state_noise=0.1,
                         synthesis_eta=1.0, **extra)
    return SemFlowPipeline.from_config(config, info).eval()


def shapes_scenes(n=20, batch=8):
    data = open_dataset("shapes", "train")
    samples = [data[i] for i in range(n)]

    def scenes():
        for start in range(0, n, batch):
            part = samples[start:start + batch]
            images = torch.stack([s["image"] for s in part]).float() / 255
            yield torch.nn.functional.interpolate(images, size=(16, 16), mode="area"), \
                torch.stack([s["label"][::2, ::2] for s in part])
    return scenes


def test_the_model_keeps_the_eta_it_measures_on_training_masks(monkeypatch):
    monkeypatch.setattr(texture, "STEPS", 3)  # a short solve: what is tested is which calls are made
    torch.manual_seed(0)
    model = stochastic_model(match_texture=True)
    seen = []
    synthesize = model.synthesize

    def spy(labels, **kw):
        # The generators' states as the call finds them: the perturbations and colours it will draw.
        seen.append((labels.shape[0], kw["eta"], kw["samples"], kw["steps"], [g.get_state() for g in kw["generator"]]))
        return synthesize(labels, **kw)

    model.synthesize = spy
    line = model.finish_training(shapes_scenes())
    assert [eta for _, eta, _, _, _ in seen] == list(ETAS)
    assert all(n == MASKS and samples == SAMPLES and steps == 3 for n, _, samples, steps, _ in seen)
    states = [s for _, _, _, _, s in seen]  # every candidate draws the same perturbations and colours
    assert all(torch.equal(a, b) for other in states[1:] for a, b in zip(states[0], other))
    assert not torch.equal(states[0][0], states[0][1])  # one generator per mask, not one shared
    assert model.config.synthesis_eta in ETAS and f"synthesis eta {model.config.synthesis_eta:g} matches" in line
    flat = stochastic_model(match_texture=True)  # nothing to match: the model (and its eta) is kept, and says why
    line = flat.finish_training(lambda: iter([(torch.full((4, 3, 16, 16), 0.5), torch.zeros(4, 16, 16).long())]))
    assert "no high-frequency energy" in line and flat.config.synthesis_eta == 1.0
    untouched = stochastic_model()  # match_texture off: nothing is measured, eta stays as given
    assert untouched.finish_training(lambda: pytest.fail("scenes read")) is None
    assert untouched.config.synthesis_eta == 1.0


def test_match_texture_needs_noise_to_redraw_and_an_eta_given_is_kept():
    with pytest.raises(SemflowInputError, match="model.match_texture chooses how much"):
        ModelConfig(match_texture=True)
    with pytest.raises(SemflowInputError, match="model.match_texture chooses how much"):
        ModelConfig(state="stacked", match_texture=True)
    recommended = load_run_config(None, [], preset_name="recommended").model
    assert recommended.match_texture and recommended.synthesis_eta == 1.0
    # An eta the user gives is the eta the model keeps (unless they also ask for the match).
    given = load_run_config(None, ["model.synthesis_eta=0.5"], preset_name="recommended").model
    assert not given.match_texture and given.synthesis_eta == 0.5
    both = load_run_config(None, ["model.synthesis_eta=0.5", "model.match_texture=true"], preset_name="recommended")
    assert both.model.match_texture
    assert not load_run_config(None, [], preset_name="paper").model.match_texture
    assert not load_run_config(None, ["model.method=noise-flow"], preset_name="recommended").model.match_texture

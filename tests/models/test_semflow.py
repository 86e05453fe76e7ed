import json
import shutil

import pytest
import torch
from torch import nn

from semflow import ModelConfig, SemFlowPipeline
from semflow.data import open_dataset
from semflow.errors import SemflowInputError
from semflow.flow.velocity import VelocityModel

from tiny import TINY_NETWORK


@pytest.fixture
def pipe():
    torch.manual_seed(0)
    info = open_dataset("shapes", "test").info
    return SemFlowPipeline.from_config(ModelConfig(size=[16, 16], network_args=TINY_NETWORK), info).eval()


def batch(n=3, size=16):
    ds = open_dataset(f"shapes:size={size}", "test")
    images = torch.stack([ds[i]["image"] for i in range(n)]).float() / 255
    labels = torch.stack([ds[i]["label"] for i in range(n)])
    return images, labels


class Recorder(nn.Module):
    """A velocity module that records the state and times of the training call (the one with ``full=True``)."""

    def __init__(self, velocity):
        super().__init__()
        self.velocity, self.calls = velocity, []

    def forward(self, z, t, full=False):
        if full:
            self.calls.append((z.clone(), t.clone()))
        return self.velocity(z, t, full=full)


def with_objective(model, **objective):
    """The same network and codec, with another objective (set at construction, as every model's)."""
    import dataclasses

    from semflow.config import ObjectiveConfig

    config = dataclasses.replace(model.config, objective=ObjectiveConfig(**objective))
    return SemFlowPipeline(model.codec, model.network, config, model.dataset)


def test_network_receives_1000_t():
    class Spy(nn.Module):
        def forward(self, sample, timestep):
            self.timestep = timestep
            return torch.zeros_like(sample)

    spy = Spy()
    VelocityModel(spy)(torch.zeros(2, 3, 4, 4), torch.tensor([0.25, 1.0]))
    assert spy.timestep.tolist() == [250.0, 1000.0]


def test_training_loss_matches_the_definition(pipe):
    images, labels = batch()
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    loss = pipe.training_loss(images, labels, generator=g1)
    # Recompute by hand with the same random draws, in the same order.
    z0 = images * 2 - 1
    noise = torch.rand((3, 3, 16, 16), generator=g2) * 2 - 1
    z1 = (pipe.palette.encode(labels) + noise * pipe.beta) / 255 * 2 - 1
    t = torch.rand(3, generator=g2)
    zt = (1 - t.view(-1, 1, 1, 1)) * z0 + t.view(-1, 1, 1, 1) * z1
    with torch.no_grad():
        pred = pipe.network(zt, t * 1000).sample
    torch.testing.assert_close(loss.detach(), ((pred - (z1 - z0)) ** 2).mean())


def test_segment_and_synthesize_shapes(pipe):
    images, labels = batch()
    seg = pipe.segment(torch.nn.functional.interpolate(images, size=(24, 20)), steps=3, return_trajectory=True)
    assert seg.labels.shape == (3, 24, 20) and seg.labels.dtype == torch.long
    assert seg.pseudo_mask.shape == (3, 3, 16, 16)
    assert seg.trajectory.shape == (4, 3, 3, 16, 16)
    assert int(seg.labels.max()) < 5
    out = pipe.synthesize(labels, steps=2, samples=4, seed=1)
    assert out.images.shape == (3, 4, 3, 16, 16)
    assert out.images.min() >= 0 and out.images.max() <= 1


def test_synthesis_seed_reproduces_and_samples_differ(pipe):
    _, labels = batch(2)
    a = pipe.synthesize(labels, steps=2, samples=3, seed=7).images
    b = pipe.synthesize(labels, steps=2, samples=3, seed=7).images
    c = pipe.synthesize(labels, steps=2, samples=3, seed=8).images
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not torch.equal(a[:, 0], a[:, 1])  # a fresh perturbation per sample: one mask, many images


def test_save_load_round_trip_is_identical(pipe, tmp_path):
    images, labels = batch()
    pipe.save_pretrained(tmp_path / "m")
    loaded = SemFlowPipeline.from_pretrained(tmp_path / "m")
    a, b = pipe.segment(images, steps=2), loaded.segment(images, steps=2)
    assert torch.equal(a.pseudo_mask, b.pseudo_mask) and torch.equal(a.labels, b.labels)
    assert torch.equal(pipe.synthesize(labels, 2, 2, seed=0).images, loaded.synthesize(labels, 2, 2, seed=0).images)
    assert loaded.dataset == pipe.dataset and loaded.palette == pipe.palette and loaded.beta == pipe.beta
    # Saving over an existing folder replaces the model and keeps other files.
    (tmp_path / "m" / "loss.csv").write_text("step,loss\n")
    pipe.save_pretrained(tmp_path / "m")
    assert (tmp_path / "m" / "loss.csv").exists()


@pytest.mark.parametrize("damage", ["config", "weights", "network_config", "format", "json"])
def test_damaged_model_folder_gives_a_clear_error(pipe, tmp_path, damage):
    folder = tmp_path / "m"
    pipe.save_pretrained(folder)
    if damage == "config":
        (folder / "semflow_config.json").unlink()
    elif damage == "weights":
        for f in (folder / "network").glob("*.safetensors"):
            f.unlink()
    elif damage == "network_config":
        (folder / "network" / "config.json").unlink()
    elif damage == "format":
        meta = json.loads((folder / "semflow_config.json").read_text())
        meta["format"] = 99
        (folder / "semflow_config.json").write_text(json.dumps(meta))
    else:
        (folder / "semflow_config.json").write_text("{not json")
    with pytest.raises(SemflowInputError, match=str(folder)):
        SemFlowPipeline.from_pretrained(folder)


def test_beta_must_stay_below_half_the_palette_step():
    info = open_dataset("shapes", "test").info
    with pytest.raises(SemflowInputError, match="beta"):
        SemFlowPipeline.from_config(ModelConfig(size=[16, 16], network_args=TINY_NETWORK, beta=25.0), info)


def test_a_custom_velocity_network_plugs_in():
    class Zero(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(()))

        def forward(self, sample, timestep):
            return sample * self.w

    info = open_dataset("shapes", "test").info
    base = SemFlowPipeline.from_config(ModelConfig(size=[16, 16], network_args=TINY_NETWORK), info)
    custom = SemFlowPipeline(base.codec, Zero(), base.config, info)
    images, _ = batch(1)
    # A zero field leaves the image where it is: the decoded "mask" is the image itself.
    out = custom.segment(images, steps=3)
    torch.testing.assert_close(out.pseudo_mask / 255, images)


@pytest.fixture
def recommended_like():
    """A model with a stacked state and a noise fill."""
    torch.manual_seed(0)
    info = open_dataset("shapes", "test").info
    config = ModelConfig(size=[16, 16], network_args=TINY_NETWORK, state="stacked", state_noise=0.3)
    return SemFlowPipeline.from_config(config, info).eval()


def test_stacked_model_round_trips_and_segments_deterministically(recommended_like, tmp_path):
    images, labels = batch()
    assert recommended_like.network.config.in_channels == 6 and recommended_like.network.config.out_channels == 6
    first = recommended_like.segment(images, steps=3)
    again = recommended_like.segment(images, steps=3)
    assert torch.equal(first.labels, again.labels)  # the fill comes from a fixed seed
    alone = recommended_like.segment(images[1:2], steps=3)  # an image's labels do not depend on its batch
    torch.testing.assert_close(alone.pseudo_mask, first.pseudo_mask[1:2], atol=1e-3, rtol=0)
    recommended_like.save_pretrained(tmp_path / "m")
    loaded = SemFlowPipeline.from_pretrained(tmp_path / "m")
    assert loaded.config.state == "stacked"
    assert torch.equal(loaded.segment(images, steps=3).labels, first.labels)
    a = recommended_like.synthesize(labels, steps=2, samples=2, seed=4).images
    b = loaded.synthesize(labels, steps=2, samples=2, seed=4).images
    assert torch.equal(a, b)


def test_stacked_synthesis_of_a_mask_depends_on_its_own_generator_alone(recommended_like):
    _, labels = batch()
    gens = lambda: [torch.Generator().manual_seed(10 + i) for i in range(3)]  # noqa: E731
    together = recommended_like.synthesize(labels, steps=2, samples=2, generator=gens()).images
    alone = recommended_like.synthesize(labels[2:], steps=2, samples=2, generator=gens()[2:]).images
    torch.testing.assert_close(alone[0], together[2], atol=1e-5, rtol=0)
    assert not torch.allclose(together[2, 0], together[2, 1])  # the fill makes the samples differ


def test_the_objective_is_the_models_own_and_saved_with_it(tmp_path):
    from semflow.config import ObjectiveConfig, load_run_config

    config = load_run_config(None, ["model.size=[16,16]", f"model.network_args={json.dumps(TINY_NETWORK)}"],
                             preset_name="recommended")
    info = open_dataset("shapes", "test").info
    model = SemFlowPipeline.from_config(config.model, info)
    assert model.objective == config.model.objective != ObjectiveConfig()
    images, labels = batch()
    said = model.prepare_training(lambda: iter([(model.encode_input(images), labels)]))  # the scene-bank hook
    assert said.startswith("collected the class colours of 3 training scene(s)") and model.scenes is not None
    model.save_pretrained(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "semflow_config.json").read_text())["model"]["objective"]["t0_mass"] == 0.5
    assert SemFlowPipeline.from_pretrained(tmp_path / "m").objective == model.objective


def test_the_self_aligned_loss_is_the_velocity_mse_at_the_models_own_states(recommended_like):
    from semflow.flow.path import sample_path, sample_time
    from semflow.flow.self_alignment import self_aligned_sample
    from semflow.models.base import TrainingTime

    images, labels = batch(4)
    model = with_objective(recommended_like, self_align_fraction=0.5, self_align_share=1.0, self_align_steps=4)
    posterior = model.codec.image_posterior(images)
    assert model.aligned_count(4, TrainingTime(5, 10)) == 4 and model.aligned_count(4, TrainingTime(4, 10)) == 0
    with torch.no_grad():
        loss = model.training_loss(images, labels, generator=torch.Generator().manual_seed(1), at=TrainingTime(9, 10))
        # By hand, with the same draws in the same order: the ends, t (none on the straight path), the solves.
        g = torch.Generator().manual_seed(1)
        z0, z1 = model.training_ends(posterior, labels, g)
        sample_time(0, z0.device, g)
        own = self_aligned_sample(model.velocity, z0, z1, 4, g)
        v = model.velocity(own.z_t, own.t)
        expected = model.layout.mean((v - (own.z1 - own.z0)) ** 2)
        torch.testing.assert_close(loss, expected)
        k = round(float(own.t[0]) * 4)
        assert 1 <= k <= 3 and not torch.allclose(own.z_t, sample_path(z0, z1, own.t).z_t)
        # Before the phase the same draws train on the straight path.
        before = model.training_loss(images, labels, generator=torch.Generator().manual_seed(1), at=TrainingTime(4, 10))
        g = torch.Generator().manual_seed(1)
        z0, z1 = model.training_ends(posterior, labels, g)
        path = sample_path(z0, z1, sample_time(4, z0.device, g))
        torch.testing.assert_close(before, model.layout.mean((model.velocity(path.z_t, path.t) - path.dz_t) ** 2))


def test_self_align_share_keeps_the_rest_of_the_batch_on_the_straight_path(recommended_like):
    from semflow.models.base import TrainingTime

    images, labels = batch()
    images, labels = torch.cat([images, images[:1]]), torch.cat([labels, labels[:1]])  # a batch of 4
    for share, aligned in ((0.5, 2), (1.0, 4), (0.25, 1)):
        model = with_objective(recommended_like, t0_mass=1.0, self_align_fraction=0.3, self_align_share=share,
                               self_align_steps=4)
        recorder = Recorder(model.velocity)
        loss = model.training_loss(images, labels, trainable=recorder, generator=torch.Generator().manual_seed(3),
                                   at=TrainingTime(9, 10))
        ((_, t),) = recorder.calls
        assert torch.isfinite(loss)
        # the model's own states sit at k/4 for some k in 1..3; the rest at t = 0, as the time sampling says
        assert bool(((t[:aligned] > 0) & (t[:aligned] < 1)).all()) and bool((t[aligned:] == 0).all()), (share, t)


@pytest.mark.parametrize("state", ["shared", "stacked"])
def test_snap_solver_ends_on_palette_colours_and_agrees_with_euler_in_one_step(state):
    torch.manual_seed(0)
    info = open_dataset("shapes", "test").info
    config = ModelConfig(size=[16, 16], network_args=TINY_NETWORK, state=state)
    model = SemFlowPipeline.from_config(config, info).eval()
    images, labels = batch()
    # The projection keeps an image part and maps a mask part to the clean pseudo-mask of its own decoding.
    clean = model.codec.encode_mask(model.palette.encode(labels) / 255.0)
    state_in = torch.cat([torch.randn_like(clean), clean], dim=1) if state == "stacked" else clean
    noisy = state_in + 0.01 * torch.randn_like(state_in)
    snapped = model.snap_to_palette(noisy)
    torch.testing.assert_close(model.layout.mask_part(snapped), clean)
    if state == "stacked":
        assert torch.equal(model.layout.image_part(snapped), model.layout.image_part(noisy))
    # One step: both solvers decode the same end; more steps: snap's end is itself a palette mask.
    assert torch.equal(model.segment(images, steps=1, solver="snap").labels,
                       model.segment(images, steps=1, solver="euler").labels)
    out = model.segment(images, steps=4, solver="snap")
    colours = out.pseudo_mask.round()
    assert torch.equal(colours, model.palette.encode(model.palette.decode(colours)))
    # Synthesis has no projection of its image end: snap is Euler there.
    assert torch.equal(model.synthesize(labels, steps=3, seed=1, solver="snap").images,
                       model.synthesize(labels, steps=3, seed=1, solver="euler").images)


@pytest.mark.parametrize("config, match", [
    ({"state": "side"}, "model.state='side'; expected one of shared, stacked"),
    ({"method": "dsm", "state": "stacked"}, "model.state and model.readout apply to model.method=semflow"),
    ({"readout": "logits"}, "model.readout='logits'; expected one of palette, head"),
    ({"method": "discriminative", "readout": "head"}, "model.readout apply to model.method=semflow"),
    ({"method": "dsm", "objective": {"t0_mass": 0.5}}, "model.objective applies to model.method=semflow"),
    ({"image_source": "class-means"}, "model.image_source=class-means applies only to model.state=stacked"),
])
def test_flow_options_are_refused_for_the_baselines_and_unknown_values(config, match):
    from semflow.config import ObjectiveConfig

    if "objective" in config:
        config = {**config, "objective": ObjectiveConfig(**config["objective"])}
    with pytest.raises(SemflowInputError, match=match):
        ModelConfig(**config)


@pytest.mark.parametrize("old, match", [
    ({"model": {"parameterization": "endpoints"}}, "model.parameterization='endpoints'"),
    ({"model": {"condition": "known-end"}}, "model.condition='known-end'"),
    ({"model": {"palette": {"kind": "separated"}}}, "model.palette.kind='separated'"),
    ({"train": {"objective": {"image_weight": 0.9}}}, "train.objective.image_weight=0.9"),
    ({"train": {"objective": {"time": {"kind": "logit-normal"}}}}, "train.objective.time"),
    ({"train": {"objective": {"class_weight": 1.0}}}, "train.objective.class_weight=1.0"),
    ({"model": {"state": "stacked", "state_noise": 0.1, "image_source": "fill", "state_image_noise": 0.5}},
     "model.state_image_noise=0.5"),
])
def test_configurations_with_removed_options_are_refused_naming_them(tmp_path, old, match):
    from semflow.config import load_run_config

    (tmp_path / "old.json").write_text(json.dumps(old))
    with pytest.raises(SemflowInputError, match=match + ".*no longer has"):
        load_run_config(tmp_path / "old.json")


def test_configurations_written_before_the_prune_read_as_what_they_trained(tmp_path):
    from semflow.config import load_run_config

    old = {"model": {"state": "stacked", "state_noise": 0.1, "image_source": "class-means", "state_image_noise": 0.0,
                     "perturbation": "uniform", "parameterization": "velocity", "condition": "none"},
           "train": {"objective": {"time": {"kind": "endpoints", "t0_mass": 0.5, "t1_mass": 0.1, "mean": 0.0,
                                            "std": 1.0, "t0_width": 0.0, "t1_width": 0.0},
                                   "class_weight": 0.0, "class_tau": 0.1, "image_weight": 0.5,
                                   "self_align_fraction": 0.3, "self_align_steps": 5, "self_align_share": 0.5,
                                   "self_align_solver": "euler"}}}
    (tmp_path / "old.json").write_text(json.dumps(old))
    config = load_run_config(tmp_path / "old.json")
    assert (config.model.objective.t0_mass, config.model.objective.t1_mass) == (0.5, 0.1)
    assert config.model.objective.self_align_fraction == 0.3 and config.model.image_source == "class-means"


def test_model_solver_is_the_default_of_segment_and_is_checked(tmp_path):
    torch.manual_seed(0)
    info = open_dataset("shapes", "test").info
    model = SemFlowPipeline.from_config(ModelConfig(size=[16, 16], network_args=TINY_NETWORK, solver="snap"), info)
    model.eval()
    images, _ = batch()
    assert model.default_solver == "snap" and model.check_solver(None) == "snap"
    model.save_pretrained(tmp_path / "m")
    loaded = SemFlowPipeline.from_pretrained(tmp_path / "m")
    assert loaded.default_solver == "snap"
    assert torch.equal(loaded.segment(images, steps=4).labels, loaded.segment(images, steps=4, solver="snap").labels)
    assert not torch.equal(loaded.segment(images, steps=4).pseudo_mask,
                           loaded.segment(images, steps=4, solver="euler").pseudo_mask)
    with pytest.raises(SemflowInputError, match="model.solver='rk4'; expected one of euler, heun, midpoint, snap"):
        SemFlowPipeline.from_config(ModelConfig(size=[16, 16], network_args=TINY_NETWORK, solver="rk4"), info)
    with pytest.raises(SemflowInputError, match="model.solver applies"):
        ModelConfig(method="discriminative", solver="snap")


# ---------------------------------------------------------------- the class head (model.readout=head)
@pytest.fixture
def head_model():
    torch.manual_seed(0)
    info = open_dataset("shapes", "test").info
    config = ModelConfig(size=[16, 16], network_args=TINY_NETWORK, state="stacked", state_noise=0.1, readout="head")
    return SemFlowPipeline.from_config(config, info).eval()


def test_head_adds_one_output_channel_per_class_and_the_loss_its_cross_entropy(head_model):
    """The head's loss is exactly the cross-entropy of the network's last K channels at the training state:
    the same network without those channels gives the rest of the loss, with the same draws."""
    import copy

    import torch.nn.functional as F

    k = head_model.dataset.num_classes
    assert head_model.network.config.out_channels == 6 + k and head_model.velocity.head_channels == k
    flow_only = copy.deepcopy(head_model)
    conv = flow_only.network.conv_out
    conv.weight.data, conv.bias.data = conv.weight.data[:6].clone(), conv.bias.data[:6].clone()
    conv.out_channels = 6
    flow_only.velocity.head_channels = 0
    images, labels = batch()
    recorder = Recorder(head_model.velocity)
    with torch.no_grad():
        loss = head_model.training_loss(images, labels, trainable=recorder, generator=torch.Generator().manual_seed(2))
        rest = flow_only.training_loss(images, labels, generator=torch.Generator().manual_seed(2))
        z, t = recorder.calls[0]
        logits = head_model.network(z, t * 1000).sample[:, 6:]
    expected = F.cross_entropy(logits, labels, ignore_index=head_model.palette.ignore_index or -100)
    torch.testing.assert_close(loss - rest, expected)
    assert float(expected) > 0


@pytest.mark.parametrize("solver", ["euler", "snap"])
def test_head_readout_is_the_argmax_of_the_calls_mean_probabilities(head_model, solver):
    images, _ = batch()
    one = head_model.segment(images, steps=1, solver=solver)
    from semflow.seeding import make_generator

    z0 = head_model.layout.image_state(head_model.encode_input(images), make_generator(0), per_sample=False)
    with torch.no_grad():
        logits = head_model.network(z0, torch.zeros(3)).sample[:, 6:]
    assert torch.equal(one.labels, logits.argmax(1))  # one step: the head's classes at t = 0
    calls = []
    hook = head_model.network.register_forward_hook(lambda module, args, out: calls.append(out.sample[:, 6:]))
    try:
        many = head_model.segment(images, steps=4, solver=solver)
    finally:
        hook.remove()
    assert len(calls) == 4
    mean = torch.stack(calls).softmax(2).mean(0)
    assert torch.equal(many.labels, mean.argmax(1))
    # The mean is not the last call: on this untrained model they disagree somewhere, so the test tells them apart.
    assert not torch.equal(many.labels, calls[-1].argmax(1))
    if solver == "snap":  # the final state is the snapped end: its mask decodes to the classes read
        assert torch.equal(head_model.palette.decode(many.pseudo_mask), many.labels)


def test_head_model_round_trips(head_model, tmp_path):
    images, labels = batch()
    head_model.save_pretrained(tmp_path / "m")
    loaded = SemFlowPipeline.from_pretrained(tmp_path / "m")
    assert loaded.config.readout == "head" and loaded.velocity.head_channels == head_model.dataset.num_classes
    assert torch.equal(loaded.segment(images, steps=3, solver="snap").labels,
                       head_model.segment(images, steps=3, solver="snap").labels)
    out = loaded.synthesize(labels, steps=2, samples=2, seed=1).images  # synthesis reads no logits
    assert out.shape == (3, 2, 3, 16, 16)


def test_stochastic_synthesis_leaves_segmentation_and_the_ode_as_they_were(tmp_path):
    torch.manual_seed(0)
    info = open_dataset("shapes", "test").info
    config = ModelConfig(size=[16, 16], network_args=TINY_NETWORK, state="stacked", state_noise=0.1)
    ode = SemFlowPipeline.from_config(config, info).eval()
    sde = SemFlowPipeline.from_config(ModelConfig(**{**config.__dict__, "synthesis_eta": 0.5}), info).eval()
    sde.load_state_dict(ode.state_dict())
    images, labels = batch()
    for steps in (1, 4):
        assert torch.equal(sde.segment(images, steps=steps).pseudo_mask, ode.segment(images, steps=steps).pseudo_mask)
    a = ode.synthesize(labels, steps=4, samples=2, seed=3).images
    torch.testing.assert_close(sde.synthesize(labels, steps=4, samples=2, seed=3, eta=0).images, a)
    b = sde.synthesize(labels, steps=4, samples=2, seed=3).images
    modes = []  # synthesis builds no autograd graph, in the codec (a latent decoder has weights) as in the solve
    decode = sde.codec.decode
    sde.codec.decode = lambda z: modes.append(torch.is_grad_enabled()) or decode(z)
    sde.synthesize(labels, steps=1, seed=3)
    del sde.codec.decode
    assert modes == [False]
    assert not torch.allclose(a, b) and torch.equal(b, sde.synthesize(labels, steps=4, samples=2, seed=3).images)
    torch.testing.assert_close(ode.synthesize(labels, steps=4, samples=2, seed=3, eta=0.5).images, b)
    gens = lambda: [torch.Generator().manual_seed(10 + i) for i in range(3)]  # noqa: E731
    together = sde.synthesize(labels, steps=3, samples=2, generator=gens()).images
    alone = sde.synthesize(labels[2:], steps=3, samples=2, generator=gens()[2:]).images
    torch.testing.assert_close(alone[0], together[2], atol=1e-5, rtol=0)
    sde.save_pretrained(tmp_path / "m")
    assert SemFlowPipeline.from_pretrained(tmp_path / "m").config.synthesis_eta == 0.5
    with pytest.raises(SemflowInputError, match="takes stochastic Euler steps; solver 'heun' has none"):
        sde.synthesize(labels, steps=2, solver="heun")
    with pytest.raises(SemflowInputError, match="eta=1.5"):
        sde.synthesize(labels, steps=2, eta=1.5)
    shared = SemFlowPipeline.from_config(ModelConfig(size=[16, 16], network_args=TINY_NETWORK), info).eval()
    with pytest.raises(SemflowInputError, match="this model has none"):  # no noise at the mask end to redraw
        shared.synthesize(labels, steps=2, eta=0.5)


@pytest.mark.parametrize("config, match", [
    ({"synthesis_eta": 0.5}, "needs model.state=stacked"),
    ({"synthesis_eta": 0.5, "state": "stacked"}, "needs model.state=stacked"),
    ({"synthesis_eta": 1.5, "state": "stacked", "state_noise": 0.1}, r"model.synthesis_eta=1.5; expected a probability"),
    ({"synthesis_eta": float("nan"), "state": "stacked", "state_noise": 0.1}, "model.synthesis_eta=nan"),
])
def test_bad_synthesis_eta_is_refused(config, match):
    with pytest.raises(SemflowInputError, match=match):
        ModelConfig(**config)


def test_the_class_means_noise_can_be_set_on_the_recommended_preset():
    """--set model.state_image_noise on a preset that paints class means is today's option, not an old file's fill."""
    from semflow.config import load_run_config

    config = load_run_config(None, ["model.state_image_noise=0.05"], preset_name="recommended")
    assert config.model.image_source == "class-means" and config.model.state_image_noise == 0.05
    with pytest.raises(SemflowInputError, match="state_image_noise"):  # the paper preset paints no class means
        load_run_config(None, ["model.state_image_noise=0.05"], preset_name="paper")

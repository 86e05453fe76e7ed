"""The baselines (DSM, discriminative) beside SemFlow: construction, files, oracle networks, solver rules,
merged evaluation and the synthesis scores. Oracle networks give closed-form answers: a noise predictor that
knows the true mask latent must denoise to exactly that mask in any number of DDIM/DDPM steps."""

import dataclasses

import pytest
import torch
from torch import nn

from semflow import ModelConfig, SemFlowPipeline
from semflow.codecs import Posterior
from semflow.data import open_dataset
from semflow.models.dsm import DiffusionSegmenter
from semflow.models.discriminative import DiscriminativeSegmenter
from semflow.errors import SemflowInputError
from semflow.evaluation.segmentation import EvaluationResult, evaluate_segmentation
from semflow.config import METHODS
from semflow.models.base import REGISTRY, Segmenter, all_solvers, model_class
from semflow.evaluation.metrics import ConfusionMatrix
from semflow.evaluation.synthesis import evaluate_synthesis
from semflow.seeding import make_generator

from tiny import TINY_NETWORK, tiny_network

SIZE = 16
INFO = open_dataset("shapes", "test").info


def make(method, info=INFO, **config):
    torch.manual_seed(0)
    return SemFlowPipeline.from_config(
        ModelConfig(size=[SIZE, SIZE], network_args=tiny_network(method), method=method, **config), info).eval()


def batch(n=3, split="test"):
    ds = open_dataset(f"shapes:size={SIZE}", split)
    images = torch.stack([ds[i]["image"] for i in range(n)]).float() / 255
    labels = torch.stack([ds[i]["label"] for i in range(n)])
    return images, labels


# ---------------------------------------------------------------------------------------------- construction
@pytest.mark.parametrize("method, cls, channels", [
    ("semflow", SemFlowPipeline, (3, 3)),
    ("dsm", DiffusionSegmenter, (6, 3)),  # [x_k, z_image] in, eps out
    ("discriminative", DiscriminativeSegmenter, (3, 5)),  # image latent in, one logit per class out
])
def test_from_config_builds_the_class_and_channels_of_the_method(method, cls, channels):
    pipe = make(method)
    assert type(pipe) is cls and pipe.method == method and model_class(method) is cls
    assert (pipe.network.config.in_channels, pipe.network.config.out_channels) == channels
    assert cls.network_channels(pipe.codec, INFO, pipe.config) == channels
    # The baselines train the bare network (no 1000 t time scaling wrapper in between).
    assert (pipe.trainable is pipe.network) == (method != "semflow")


def test_subclass_from_config_refuses_another_method():
    with pytest.raises(SemflowInputError, match="DiscriminativeSegmenter"):
        DiffusionSegmenter.from_config(ModelConfig(size=[SIZE, SIZE], network_args=TINY_NETWORK,
                                                   method="discriminative"), INFO)


def test_every_listed_solver_runs_on_some_model_and_the_rest_are_refused():
    """``all_solvers`` (the commands' --solver choices) is exactly what the models' ``segment`` accepts."""
    images, _ = batch(1)
    accepted = set()
    for method in [m for m in METHODS if model_class(m).can_segment]:
        pipe = make(method).eval()
        for solver in all_solvers():
            try:
                pipe.segment(images, steps=1, solver=solver)
            except SemflowInputError as err:
                assert solver in str(err) and method in str(err)
            else:
                accepted.add(solver)
    assert accepted == set(all_solvers()) and len(all_solvers()) == len(accepted)


def test_registry_is_filled_by_the_classes_and_loads_any_folder_through_the_base(tmp_path):
    for method in METHODS:
        assert model_class(method).method == method and REGISTRY[method] is model_class(method)
        make(method).save_pretrained(tmp_path / method)
        for entry in (Segmenter, SemFlowPipeline):  # SemFlowPipeline.from_pretrained: the public entry point
            assert type(entry.from_pretrained(tmp_path / method)) is model_class(method)
    assert [m for m in METHODS if model_class(m).can_synthesize] == ["semflow", "noise-flow", "spade"]
    assert [m for m in METHODS if not model_class(m).can_segment] == ["noise-flow", "spade"]
    assert not hasattr(make("dsm"), "synthesize")  # a sibling, not a subclass that refuses
    with pytest.raises(SemflowInputError, match="DiffusionSegmenter"):
        DiffusionSegmenter.from_pretrained(tmp_path / "semflow")


@pytest.mark.parametrize("method, solver", [("dsm", "ddim"), ("dsm", "ddpm"), ("discriminative", None)])
def test_save_load_round_trip_is_bit_identical(tmp_path, method, solver):
    pipe = make(method)
    images, _ = batch()
    pipe.save_pretrained(tmp_path / "m")
    loaded = SemFlowPipeline.from_pretrained(tmp_path / "m")
    assert type(loaded) is type(pipe) and loaded.config == pipe.config and loaded.dataset == pipe.dataset
    a, b = pipe.segment(images, steps=3, solver=solver), loaded.segment(images, steps=3, solver=solver)
    assert torch.equal(a.labels, b.labels) and torch.equal(a.pseudo_mask, b.pseudo_mask)
    if method == "dsm":
        assert loaded.scheduler_config == pipe.scheduler_config
        # Seeded: the same seed gives the same labels, another seed another start noise.
        again = loaded.segment(images, steps=3, solver=solver)
        other = loaded.segment(images, steps=3, solver=solver, seed=1)
        assert torch.equal(again.pseudo_mask, b.pseudo_mask) and not torch.equal(other.pseudo_mask, b.pseudo_mask)


def test_dsm_scheduler_args_survive_the_model_folder(tmp_path):
    pipe = make("dsm", scheduler_args={"beta_schedule": "squaredcos_cap_v2"})
    pipe.save_pretrained(tmp_path / "m")
    loaded = DiffusionSegmenter.from_pretrained(tmp_path / "m")
    assert loaded.noise_schedule.config.beta_schedule == "squaredcos_cap_v2"
    torch.testing.assert_close(loaded.noise_schedule.alphas_cumprod, pipe.noise_schedule.alphas_cumprod)


def test_the_wrong_class_refuses_to_load_another_method(tmp_path):
    make("discriminative").save_pretrained(tmp_path / "m")
    with pytest.raises(SemflowInputError, match="discriminative"):
        DiffusionSegmenter.from_pretrained(tmp_path / "m")


# ---------------------------------------------------------------------------------------------- DSM oracle
def true_mask_latent(pipe, labels):
    """``E(palette(labels))``: the mask latent without perturbation, ``(B, C, h, w)``."""
    return pipe.codec.encode_mask(pipe.palette.encode(labels) / 255.0)


def exact_noise(pipe, x_k, x0, k):
    """``eps = (x_k - sqrt(abar_k) x0) / sqrt(1 - abar_k)``: what a perfect network predicts."""
    abar = pipe.noise_schedule.alphas_cumprod.to(x_k.device)[k.long()].view(-1, 1, 1, 1)
    return (x_k - abar.sqrt() * x0) / (1 - abar).sqrt()


@pytest.mark.parametrize("solver, steps", [("ddim", 1), ("ddim", 3), ("ddim", 10), ("ddpm", 1), ("ddpm", 5)])
def test_dsm_with_an_oracle_noise_predictor_returns_the_true_labels(solver, steps):
    pipe = make("dsm")
    _, labels = batch()
    images = torch.rand(3, 3, SIZE, SIZE)  # any images: the oracle ignores them
    x0 = true_mask_latent(pipe, labels)
    calls = []

    def oracle(network, x_k, z_image, k):
        calls.append(k.clone())
        assert z_image.shape == x_k.shape == x0.shape
        return exact_noise(pipe, x_k, x0, k)

    pipe.predict_noise = oracle
    out = pipe.segment(images, steps=steps, solver=solver, return_trajectory=True)
    # The start (decoded noise) and each step, as SemFlow's trajectory: N + 1 states.
    assert len(calls) == steps and out.trajectory.shape == (steps + 1, 3, 3, SIZE, SIZE)
    torch.testing.assert_close(out.trajectory[-1], out.pseudo_mask)
    assert torch.equal(out.labels, labels)
    # The final state is the clean mask latent itself (DDIM: eta = 0, final alpha 1; DDPM: no noise at the end).
    torch.testing.assert_close(out.pseudo_mask, pipe.palette.encode(labels), atol=1e-2, rtol=0)


def test_dsm_training_loss_with_an_oracle_is_zero():
    pipe = make("dsm")
    images, labels = batch()
    drawn = {}
    add_noise = pipe.noise_schedule.add_noise

    def spy(x0, eps, k):  # captures the loss's own (perturbed) x0 and timesteps
        drawn.update(x0=x0.clone(), eps=eps.clone(), k=k.clone())
        return add_noise(x0, eps, k)

    def oracle(network, x_k, z_image, k):
        assert torch.equal(k, drawn["k"])
        return exact_noise(pipe, x_k, drawn["x0"], k)

    pipe.noise_schedule.add_noise = spy
    pipe.predict_noise = oracle
    loss = pipe.training_loss(images, labels, generator=torch.Generator().manual_seed(0))
    assert float(loss) < 1e-8
    # x0 is the perturbed mask latent: within beta pixel levels (2 beta / 255 in pixel-codec units) of E(palette).
    offset = (drawn["x0"] - true_mask_latent(pipe, labels)).abs()
    assert 0 < float(offset.max()) <= 2 * pipe.beta / 255 + 1e-6
    assert 0 <= int(drawn["k"].min()) and int(drawn["k"].max()) < pipe.noise_schedule.config.num_train_timesteps
    # And the loss is the epsilon MSE: a network that predicts zero scores mean(eps^2).
    pipe.predict_noise = lambda network, x_k, z_image, k: torch.zeros_like(x_k)
    loss = pipe.training_loss(images, labels, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(loss, (drawn["eps"] ** 2).mean())


def test_dsm_training_loss_is_seeded_and_has_gradients():
    pipe = make("dsm").train()
    images, labels = batch()
    a = pipe.training_loss(images, labels, generator=torch.Generator().manual_seed(1))
    b = pipe.training_loss(images, labels, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.requires_grad
    a.backward()
    assert all(p.grad is not None for p in pipe.trainable.parameters())


@pytest.mark.parametrize("solver", ["ddim", "ddpm"])
@pytest.mark.parametrize("steps, expected", [(1, [999]), (4, [999, 749, 499, 249])])
def test_dsm_network_sees_trailing_timesteps_and_2c_channels(solver, steps, expected):
    pipe = make("dsm")
    seen = []
    hook = pipe.network.register_forward_pre_hook(lambda module, args: seen.append((args[0].clone(), args[1])))
    images = torch.rand(2, 3, SIZE, SIZE)
    try:
        pipe.segment(images, steps=steps, solver=solver, seed=4)
    finally:
        hook.remove()
    assert [k.tolist() for _, k in seen] == [[t, t] for t in expected]  # one k per image, never 1000 t
    assert all(x.shape == (2, 6, SIZE, SIZE) for x, _ in seen)
    # [x_k, z_image] in that order: the first call sees the seeded start noise, then E(image) = 2 x - 1.
    first = seen[0][0]
    torch.testing.assert_close(first[:, :3], torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(4)))
    torch.testing.assert_close(first[:, 3:], images * 2 - 1)
    assert all(torch.equal(x[:, 3:], first[:, 3:]) for x, _ in seen)


def test_dsm_steps_below_one_raise():
    with pytest.raises(SemflowInputError, match="steps"):
        make("dsm").segment(torch.rand(1, 3, SIZE, SIZE), steps=0)


# ---------------------------------------------------------------------------------------------- discriminative
class Logits(nn.Module):
    """A stand-in network returning fixed logits ``(B, K, h, w)`` (a parameter so the pipeline finds a device)."""

    def __init__(self, logits):
        super().__init__()
        self.logits = nn.Parameter(logits.clone())
        self.timesteps = []

    def forward(self, sample, timestep):
        self.timesteps.append(timestep.clone())
        return self.logits[: sample.shape[0]]


def test_discriminative_with_one_hot_logits_returns_those_labels():
    pipe = make("discriminative")
    _, labels = batch()
    oracle = Logits(10 * nn.functional.one_hot(labels, INFO.num_classes).permute(0, 3, 1, 2).float())
    pipe.network = oracle
    big = nn.functional.interpolate(torch.rand(3, 3, SIZE, SIZE), size=(2 * SIZE, 2 * SIZE))
    out = pipe.segment(big)
    # Back at the input size by nearest neighbour; the pseudo-mask is the palette colour of each class.
    assert torch.equal(out.labels, labels.repeat_interleave(2, -1).repeat_interleave(2, -2))
    assert torch.equal(out.pseudo_mask, pipe.palette.encode(labels))
    assert all(float(t.abs().max()) == 0 for t in oracle.timesteps)  # the timestep input is held at 0


def test_discriminative_loss_leaves_out_ignore_pixels():
    info = dataclasses.replace(INFO, ignore_index=255)
    pipe = make("discriminative", info=info)
    images, labels = batch(2)
    labels[:, :4] = 255
    torch.manual_seed(1)
    logits = torch.randn(2, info.num_classes, SIZE, SIZE)
    posterior = Posterior(mean=images * 2 - 1, std=torch.zeros_like(images))

    def loss(values):
        pipe.network = Logits(values)
        return pipe.posterior_training_loss(posterior, labels).detach()

    base = loss(logits)
    # By hand: the mean of -log softmax at the label, over the labelled pixels only.
    keep = labels != 255
    picked = logits.log_softmax(1).gather(1, labels.clamp(max=info.num_classes - 1)[:, None])[:, 0]
    torch.testing.assert_close(base, -picked[keep].mean())
    changed = logits.clone()
    changed[:, :, :4] = torch.randn(2, info.num_classes, 4, SIZE) * 100
    assert float(loss(changed)) == float(base)
    changed[:, :, 4:5] += 100 * torch.randn(2, info.num_classes, 1, SIZE)
    assert float(loss(changed)) != float(base)
    # A batch with no labelled pixel gives no signal: 0 with a gradient path, not cross_entropy's NaN.
    labels[:] = 255
    pipe.network = Logits(logits)
    empty = pipe.posterior_training_loss(posterior, labels)
    assert float(empty.detach()) == 0.0 and empty.requires_grad


# ---------------------------------------------------------------------------------------------- solvers
def test_semflow_refuses_a_dsm_solver_and_names_its_own():
    with pytest.raises(SemflowInputError, match="euler, heun, midpoint"):
        make("semflow").segment(torch.rand(1, 3, SIZE, SIZE), steps=1, solver="ddim")


def test_dsm_refuses_an_ode_solver():
    with pytest.raises(SemflowInputError, match="ddim, ddpm"):
        make("dsm").segment(torch.rand(1, 3, SIZE, SIZE), steps=1, solver="euler")
    assert make("dsm").check_solver(None) == "ddim"


def test_discriminative_ignores_steps_and_is_scored_once():
    pipe = make("discriminative")
    assert pipe.STEPPED is False and SemFlowPipeline.STEPPED is True and DiffusionSegmenter.STEPPED is True
    images, _ = batch()
    assert torch.equal(pipe.segment(images, steps=1).labels, pipe.segment(images, steps=7).labels)
    with pytest.raises(SemflowInputError, match="forward"):
        pipe.segment(images, solver="euler")
    data = open_dataset(f"shapes:size={SIZE},length=4", "test")
    result = evaluate_segmentation(pipe, data, [1, 2, 5])
    assert list(result.matrices) == [1] and list(result.to_json()["miou"]) == ["1"]
    assert int(result.matrices[1].matrix.sum()) == 4 * SIZE * SIZE


# ---------------------------------------------------------------------------------------------- config
def test_unknown_method_raises():
    with pytest.raises(SemflowInputError, match="model.method"):
        ModelConfig(method="nope")
    with pytest.raises(SemflowInputError, match="unknown method"):
        model_class("nope")


def test_scheduler_args_apply_only_to_dsm():
    for method in ("semflow", "discriminative"):
        with pytest.raises(SemflowInputError, match="scheduler_args"):
            ModelConfig(method=method, scheduler_args={"beta_schedule": "linear"})


@pytest.mark.parametrize("args", [
    {"beta_schedule": "nope"},
    {"no_such_option": 1},
    {"prediction_type": "v_prediction"},
    {"timestep_spacing": "nope"},
])
def test_bad_scheduler_args_raise_at_construction(args):
    with pytest.raises(SemflowInputError, match="scheduler_args"):
        make("dsm", scheduler_args=args)


def test_dsm_more_steps_than_train_timesteps_is_an_input_error():
    pipe = make("dsm", scheduler_args={"num_train_timesteps": 10})
    assert len(pipe.segment(torch.rand(1, 3, SIZE, SIZE), steps=10).labels) == 1
    with pytest.raises(SemflowInputError, match="10"):
        pipe.segment(torch.rand(1, 3, SIZE, SIZE), steps=11)


# ---------------------------------------------------------------------------------------------- evaluation
@pytest.mark.parametrize("method, solver", [("semflow", "euler"), ("dsm", "ddim")])
def test_merged_parts_equal_the_whole(method, solver):
    pipe = make(method)
    data = open_dataset(f"shapes:size={SIZE},length=5", "test")
    whole = evaluate_segmentation(pipe, data, [1, 2], solver=solver, batch_size=2)
    parts = [evaluate_segmentation(pipe, data, [2, 1], solver=solver, batch_size=2, indices=idx)
             for idx in (range(0, 2), range(2, 5))]
    assert [p.num_images for p in parts] == [2, 3]
    merged = EvaluationResult.merge(parts)
    assert merged.num_images == 5 and list(merged.matrices) == [1, 2]
    for n in (1, 2):
        assert torch.equal(merged.matrices[n].matrix, whole.matrices[n].matrix)
        assert merged.scores[n] == whole.scores[n]
    assert not torch.equal(parts[0].matrices[1].matrix, whole.matrices[1].matrix)
    with pytest.raises(ValueError):
        EvaluationResult.merge([parts[0], evaluate_segmentation(pipe, data, [1], solver=solver, indices=[0])])


# ---------------------------------------------------------------------------------------------- synthesis scores
@pytest.fixture(scope="module")
def synthesis_setup():
    from semflow.evaluation.judge import Judge, JudgeConfig, Normalization
    from semflow.networks.espnet import ESPNet

    torch.manual_seed(0)
    data = open_dataset(f"shapes:size={SIZE},length=4", "test")
    # An untrained judge at twice the models' size: the scores' plumbing does not need a good one.
    judge = Judge(ESPNet(INFO.num_classes, 1, 1).eval(), INFO, JudgeConfig(size=(2 * SIZE, 2 * SIZE)),
                  Normalization((100.0,) * 3, (50.0,) * 3))
    return make("semflow"), judge, data


def test_evaluate_synthesis_scores_what_synthesize_and_segment_give_by_hand(synthesis_setup):
    """Every score recomputed from ``synthesize`` with mask ``i``'s generator ``make_generator(seed, i)`` (the one
    ``semflow synthesize --seed`` uses), the model's ``segment`` and the judge's features; and independent of the
    batching."""
    from semflow.evaluation.feature_distance import judge_distance
    from semflow.evaluation.synthesis import distances, pooled_features

    model, judge, data = synthesis_setup
    model = model.eval()
    result = evaluate_synthesis(model, data, judges={"judge": judge}, steps=2, samples=2, seed=7, batch_size=4)
    labels = torch.stack([data[i]["label"] for i in range(len(data))])
    images = model.synthesize(labels, steps=2, samples=2,
                              generator=[make_generator(7, i) for i in range(len(data))]).images
    flat, repeated = images.flatten(0, 1), labels.repeat_interleave(2, 0)
    cycle, sis = (ConfusionMatrix(INFO.num_classes, INFO.ignore_index) for _ in range(2))
    cycle.update(model.segment(flat, steps=2).labels, repeated)
    judged_labels, fake = pooled_features(judge, flat)
    sis.update(torch.nn.functional.interpolate(judged_labels[:, None].float(), size=(SIZE, SIZE), mode="nearest-exact")
               [:, 0].long(), repeated)
    real = pooled_features(judge, torch.stack([data[i]["image"] for i in range(len(data))]).float() / 255)[1]
    fd, kid, kid_std = distances(real, fake, seed=7)
    scores = result.judged["judge"]
    assert result.cycle_miou == pytest.approx(cycle.scores().miou, abs=1e-12)
    assert scores.sis_miou == pytest.approx(sis.scores().miou, abs=1e-12)
    assert (scores.fd, scores.kid, scores.kid_std) == pytest.approx((fd, kid, kid_std), rel=1e-4, abs=1e-9)
    assert scores.diversity == pytest.approx(float(judge_distance(judge.features)(images[:, 0], images[:, 1]).mean()),
                                             rel=1e-5)
    assert scores.judge == judge.name and "from scratch" in judge.name
    assert result.diversity_l1 == pytest.approx(float((images[:, 0] - images[:, 1]).abs().mean()), rel=1e-5)
    assert (result.num_masks, result.samples, result.steps, result.notes) == (4, 2, 2, [])
    rebatched = evaluate_synthesis(model, data, judges={"judge": judge}, steps=2, samples=2, seed=7, batch_size=2)
    assert rebatched.diversity_l1 == pytest.approx(result.diversity_l1, rel=1e-5)
    assert rebatched.judged["judge"].fd == pytest.approx(scores.fd, rel=1e-3, abs=1e-6)
    assert rebatched.judged["judge"].kid == pytest.approx(scores.kid, rel=1e-3, abs=1e-9)


def test_evaluate_synthesis_one_sample_and_no_judge(synthesis_setup):
    model, _, data = synthesis_setup
    result = evaluate_synthesis(model, data, steps=1, samples=1, indices=[0, 2])
    assert result.num_masks == 2 and result.diversity_l1 is None and result.judged == {}
    assert 0 <= result.cycle_miou <= 1
    assert any("2 samples" in note for note in result.notes)
    assert any("no judge" in note for note in result.notes)


def test_evaluate_synthesis_refuses_baselines_and_foreign_class_lists(synthesis_setup):
    model, judge, data = synthesis_setup
    with pytest.raises(SemflowInputError, match="dsm"):
        evaluate_synthesis(make("dsm"), data, steps=1)
    foreign = dataclasses.replace(INFO, class_names=("a", "b", "c", "d", "e"))
    with pytest.raises(SemflowInputError, match="class list"):
        evaluate_synthesis(make("semflow", info=foreign), data, steps=1)
    other = type(judge)(judge.network, foreign, judge.config, judge.normalization)
    with pytest.raises(SemflowInputError, match="pretrained judge .*class list"):
        evaluate_synthesis(model, data, judges={"pretrained": other}, steps=1)


def test_the_real_images_ceiling(synthesis_setup):
    """The ceiling row: at the judge's size and at the models' size, and real-vs-real halves."""
    from semflow.evaluation.judge import judge_miou
    from semflow.evaluation.synthesis import judge_real_images

    _, judge, data = synthesis_setup
    row = judge_real_images(data, {"judge": judge}, (SIZE // 2, SIZE // 2))["judge"]
    assert row["miou_own_size"] == pytest.approx(judge_miou(judge, data).miou, abs=1e-12)
    assert row["sis_miou"] == pytest.approx(judge_miou(judge, data, size=(SIZE // 2, SIZE // 2)).miou, abs=1e-12)
    assert row["num_images"] == 4 and row["fd"] >= 0 and row["kid_std"] is None  # 2 per half: no subsets


@pytest.mark.parametrize("method", ["semflow", "dsm", "discriminative"])
def test_segment_starts_from_the_latents_given(method):
    """``latents=encode_input(images)`` (what evaluation computes once per batch) gives ``segment(images)``
    exactly; latents of other images give their segmentation, not this batch's."""
    torch.manual_seed(0)
    pipe = make(method).eval()
    images, _ = batch(4)
    others = images.roll(1, 0)
    plain = pipe.segment(images, steps=2)
    given = pipe.segment(images, steps=2, latents=pipe.encode_input(images))
    swapped = pipe.segment(images, steps=2, latents=pipe.encode_input(others))
    assert torch.equal(plain.labels, given.labels) and torch.equal(plain.pseudo_mask, given.pseudo_mask)
    assert torch.equal(swapped.pseudo_mask, pipe.segment(others, steps=2).pseudo_mask)
    assert not torch.equal(swapped.pseudo_mask, plain.pseudo_mask)

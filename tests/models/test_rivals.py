"""The synthesis rivals (noise-flow, spade): construction, sizes against SemFlow's, training, files, synthesis,
guidance, the GAN's one-loss-two-players hook, and the refusals of a model that cannot segment."""

import json
import math

import pytest
import torch

from semflow import ModelConfig, SemFlowPipeline
from semflow.cli.main import main
from semflow.codecs import Posterior
from semflow.config import RunConfig, TrainConfig, load_run_config
from semflow.data import open_dataset
from semflow.data.base import DatasetInfo
from semflow.errors import SemflowInputError
from semflow.evaluation.synthesis import evaluate_synthesis
from semflow.models.base import Segmenter
from semflow.models.mask_input import one_hot_mask
from semflow.models.noise_flow import NoiseFlowSynthesizer
from semflow.models.spade import SpadeSynthesizer
from semflow.seeding import make_generator
from semflow.training import train

from tiny import TINY_NETWORK, TINY_SPADE, tiny_network, tiny_train_args

SIZE = 16
INFO = open_dataset("shapes", "test").info
RIVALS = ("noise-flow", "spade")


def make(method, **config):
    torch.manual_seed(0)
    return Segmenter.from_config(
        ModelConfig(size=[SIZE, SIZE], network_args=tiny_network(method), method=method, **config), INFO).eval()


def masks(n=3):
    ds = open_dataset(f"shapes:size={SIZE}", "test")
    images = torch.stack([ds[i]["image"] for i in range(n)]).float() / 255
    return images, torch.stack([ds[i]["label"] for i in range(n)])


# ---------------------------------------------------------------------------------------------- construction
def test_the_rivals_build_their_classes_and_synthesize_only():
    nf, sp = make("noise-flow"), make("spade")
    assert type(nf) is NoiseFlowSynthesizer and type(sp) is SpadeSynthesizer
    assert sp.config.network == "spade" and nf.config.network == "unet2d"  # each method's own default backbone
    # noise-flow: [z_t, 5 class fractions, mask given] in, the velocity out.
    assert (nf.network.config.in_channels, nf.network.config.out_channels) == (3 + 5 + 1, 3)
    for pipe in (nf, sp):
        assert pipe.can_synthesize and not pipe.can_segment


@pytest.mark.parametrize("network_args", [{"block_out_channels": [16, 32, 64]}, {}], ids=["bench", "default"])
def test_parameter_counts_are_within_20_percent_of_semflow_recommended(network_args):
    """At bench paper's network (the demo's UNet widths) and at the default sizes, CamVid's 11 classes, 48x64."""
    info = DatasetInfo(name="camvid", class_names=tuple(f"c{i}" for i in range(11)), ignore_index=11)

    def count(method):
        config = load_run_config(None, [f"model.method={method}", "model.size=[48, 64]",
                                        f"model.network_args={json.dumps(network_args)}"], preset_name="recommended")
        model = Segmenter.from_config(config.model, info)
        counts = model.parameter_counts()
        return counts["generator"] if method == "spade" else counts["network"]

    reference = count("semflow")
    for method in RIVALS:
        assert abs(count(method) / reference - 1) <= 0.2, (method, count(method), reference)


def test_method_args_are_checked_against_the_methods_options():
    with pytest.raises(SemflowInputError, match="unknown config key"):
        make("noise-flow", method_args={"dropout": 0.1})
    with pytest.raises(SemflowInputError, match="mask_dropout"):
        make("noise-flow", method_args={"mask_dropout": 1.0})
    with pytest.raises(SemflowInputError, match="guidance"):
        make("noise-flow", method_args={"guidance": -1})
    with pytest.raises(SemflowInputError, match="discriminator_lr"):
        make("spade", method_args={"discriminator_lr": 0})
    with pytest.raises(SemflowInputError, match="method_args"):
        ModelConfig(method="semflow", method_args={"guidance": 2})
    with pytest.raises(SemflowInputError, match="model.network"):
        make("spade", network="unet2d")


def test_one_hot_mask_gives_class_fractions_per_cell_and_zeros_where_ignored():
    labels = torch.tensor([[[0, 1], [2, 255]]])
    exact = one_hot_mask(labels, 3, 255)
    assert exact.shape == (1, 3, 2, 2) and exact[0, :, 1, 1].sum() == 0 and exact[0, 1, 0, 1] == 1
    pooled = one_hot_mask(labels, 3, 255, factor=2)
    torch.testing.assert_close(pooled[0, :, 0, 0], torch.tensor([0.25, 0.25, 0.25]))
    with pytest.raises(SemflowInputError, match="label 7"):
        one_hot_mask(torch.tensor([[[7]]]), 3, 255)


# ---------------------------------------------------------------------------------------------- synthesis
@pytest.mark.parametrize("method", RIVALS)
def test_synthesize_shapes_range_and_seeds(method):
    pipe = make(method)
    _, labels = masks()
    out = pipe.synthesize(labels, steps=2, samples=2, seed=0).images
    assert out.shape == (3, 2, 3, SIZE, SIZE) and out.min() >= 0 and out.max() <= 1
    assert torch.equal(out, pipe.synthesize(labels, steps=2, samples=2, seed=0).images)
    assert not torch.equal(out, pipe.synthesize(labels, steps=2, samples=2, seed=1).images)
    assert not torch.equal(out[:, 0], out[:, 1])  # each sample has its own noise
    # One generator per mask: a mask's images do not depend on the other masks of its batch.
    alone = pipe.synthesize(labels[1:2], steps=2, samples=2, generator=[make_generator(0, 1)]).images
    batched = pipe.synthesize(labels, steps=2, samples=2, generator=[make_generator(0, i) for i in range(3)]).images
    torch.testing.assert_close(alone[0], batched[1])
    with pytest.raises(SemflowInputError, match="generators"):
        pipe.synthesize(labels, generator=[make_generator(0)])
    with pytest.raises(SemflowInputError, match="not a class"):
        pipe.synthesize(torch.full((1, SIZE, SIZE), 9))


def test_spade_takes_no_solver_and_noise_flow_no_snap():
    _, labels = masks(1)
    with pytest.raises(SemflowInputError, match="one generator pass"):
        make("spade").synthesize(labels, solver="euler")
    with pytest.raises(SemflowInputError, match="snap"):
        make("noise-flow").synthesize(labels, solver="snap")


def test_guidance_mixes_the_conditional_and_unconditional_fields():
    pipe = make("noise-flow")
    _, labels = masks(2)
    condition = pipe.condition(labels)
    z, t = torch.randn(2, 3, SIZE, SIZE), torch.tensor([0.3, 0.7])
    v_cond = pipe.velocity(z, t, condition=condition)
    v_uncond = pipe.velocity(z, t, condition=torch.zeros_like(condition))
    torch.testing.assert_close(pipe.guided_field(condition, 1.0)(z, t), v_cond)
    torch.testing.assert_close(pipe.guided_field(condition, 0.0)(z, t), v_uncond)
    torch.testing.assert_close(pipe.guided_field(condition, 2.5)(z, t), v_uncond + 2.5 * (v_cond - v_uncond),
                               atol=1e-5, rtol=1e-5)
    # The default is the model's method_args.guidance; guidance 1 (one network call) is the conditional flow.
    assert torch.equal(pipe.synthesize(labels, steps=2, seed=0).images,
                       pipe.synthesize(labels, steps=2, seed=0, guidance=1.0).images)
    assert not torch.equal(pipe.synthesize(labels, steps=2, seed=0, guidance=3.0).images,
                           pipe.synthesize(labels, steps=2, seed=0).images)


@pytest.mark.parametrize("bad", [-0.5, math.nan, math.inf, -math.inf, "x"])
def test_guidance_negative_or_not_finite_is_refused(bad):
    with pytest.raises(SemflowInputError, match="guidance"):
        make("noise-flow").synthesize(masks(1)[1], steps=1, guidance=bad)


def test_a_model_trained_without_mask_dropout_refuses_guidance():
    pipe = make("noise-flow", method_args={"mask_dropout": 0.0})
    labels = masks(1)[1]
    pipe.synthesize(labels, steps=1, guidance=1)
    with pytest.raises(SemflowInputError, match="mask_dropout=0"):
        pipe.synthesize(labels, steps=1, guidance=2)


# ---------------------------------------------------------------------------------------------- training
def test_noise_flow_loss_is_the_velocity_mse_from_noise_with_masks_dropped():
    """Recomputed by hand from the same draws: z0 from the posterior, eps, the dropped masks, t."""
    pipe = make("noise-flow", method_args={"mask_dropout": 0.5})
    images, labels = masks(4)
    posterior = pipe.codec.image_posterior(images)
    loss = pipe.posterior_training_loss(posterior, labels, generator=make_generator(3))
    g = make_generator(3)
    z0 = posterior.sample(g)
    eps = torch.randn(z0.shape, generator=g)
    keep = torch.rand(4, generator=g) >= 0.5
    t = torch.rand(4, generator=g)
    tb = t.view(-1, 1, 1, 1)
    condition = pipe.condition(labels) * keep.view(-1, 1, 1, 1)
    v = pipe.velocity((1 - tb) * z0 + tb * eps, t, condition=condition)
    torch.testing.assert_close(loss, torch.mean((v - (eps - z0)) ** 2))
    assert 0 < int(keep.sum()) < 4  # the seed drops some masks and keeps others: both branches ran


def test_gan_hook_each_loss_moves_only_its_own_player():
    """The one loss the loop backpropagates gives the generator exactly the gradient of its own terms and the
    discriminator exactly that of its hinge loss: neither player's loss reaches the other's weights."""
    pipe = make("spade")  # eval mode: spectral norm's power iteration is not advanced, so calls are repeatable
    images, labels = masks(3)
    posterior = Posterior(mean=images * 2 - 1, std=torch.zeros_like(images))
    generator_params = list(pipe.network.generator.parameters())
    discriminator_params = list(pipe.network.discriminator.parameters())
    terms = pipe.losses(posterior, labels, generator=make_generator(1))
    g_loss = terms.adversarial + pipe.options.feature_matching * terms.feature_matching
    assert all(g is None for g in torch.autograd.grad(terms.discriminator, generator_params, allow_unused=True,
                                                      retain_graph=True))
    assert all(g is None for g in torch.autograd.grad(g_loss, discriminator_params, allow_unused=True,
                                                      retain_graph=True))
    own_g = torch.autograd.grad(g_loss, generator_params, retain_graph=True)
    own_d = torch.autograd.grad(terms.discriminator, discriminator_params)
    assert any(g.abs().sum() > 0 for g in own_g) and any(g.abs().sum() > 0 for g in own_d)
    pipe.zero_grad()
    pipe.posterior_training_loss(posterior, labels, generator=make_generator(1)).backward()
    for p, g in zip(generator_params + discriminator_params, own_g + own_d):
        torch.testing.assert_close(p.grad, g)


def test_spade_optimizer_groups_give_each_player_its_rate_and_betas():
    pipe = make("spade", method_args={"generator_lr": 0.25, "discriminator_lr": 4.0})
    groups = pipe.param_groups(1e-3)
    assert [g["lr"] for g in groups] == [2.5e-4, 4e-3] and all(g["betas"] == (0.0, 0.9) for g in groups)
    assert sum(len(g["params"]) for g in groups) == len(list(pipe.network.parameters()))
    assert set(pipe.parameter_counts()) == {"generator", "discriminator"}


def tiny_run(method, steps, **train):
    model = ModelConfig(size=[SIZE, SIZE], network_args=tiny_network(method), method=method)
    return RunConfig(model=model, train=TrainConfig(data="shapes:size=16,length=16", steps=steps, batch_size=4,
                                                    warmup_steps=1, log_every=1, **train))


@pytest.mark.parametrize("method", RIVALS)
def test_training_resumes_to_the_weights_of_an_uninterrupted_run_with_ema(tmp_path, method, monkeypatch):
    """Checkpoints, resume and EMA work for the rivals through the generic loop (the GAN's two groups included):
    a run interrupted (SIGINT) after its second step and resumed ends with the uninterrupted run's weights."""
    import os
    import signal

    from semflow.training import loop

    whole, _ = train(tiny_run(method, 3, ema_decay=0.9), tmp_path / "whole", progress_bar=False)
    step, calls = loop.train_step, []

    def interrupted_step(run, batch):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)  # the loop finishes this step, checkpoints and stops
        return step(run, batch)

    monkeypatch.setattr(loop, "train_step", interrupted_step)
    _, first = train(tiny_run(method, 3, ema_decay=0.9), tmp_path / "split", progress_bar=False)
    monkeypatch.setattr(loop, "train_step", step)
    assert first.interrupted and first.steps == 2
    resumed, result = train(tiny_run(method, 3, ema_decay=0.9), tmp_path / "split", progress_bar=False,
                            resume="latest")
    assert result.steps == 3
    for (name, a), b in zip(whole.trainable.state_dict().items(), resumed.trainable.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)


@pytest.mark.parametrize("method", RIVALS)
def test_model_folder_round_trip_synthesizes_the_same_images(tmp_path, method):
    pipe = make(method)
    pipe.save_pretrained(tmp_path / "m")
    loaded = SemFlowPipeline.from_pretrained(tmp_path / "m")
    assert type(loaded) is type(pipe) and loaded.config == pipe.config
    labels = masks()[1]
    assert torch.equal(loaded.synthesize(labels, steps=2, samples=2, seed=4).images,
                       pipe.synthesize(labels, steps=2, samples=2, seed=4).images)


@pytest.mark.parametrize("method", RIVALS)
def test_synthesis_scores_of_a_rival_have_no_cycle(method):
    pipe = make(method)
    data = open_dataset("shapes:size=16,length=4", "test")
    result = evaluate_synthesis(pipe, data, steps=2, samples=2, batch_size=2)
    assert result.cycle_miou is None and result.diversity_l1 > 0 and result.hf_energy > 0
    assert result.num_masks == 4


# ---------------------------------------------------------------------------------------------- commands
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Tiny models of both rivals trained by ``semflow train`` (2 steps), and two mask PNGs."""
    from semflow.files import save_label_png

    root = tmp_path_factory.mktemp("rivals")
    for method in RIVALS:
        args = tiny_train_args(root / method) + ["--method", method]
        if method == "spade":
            args += ["--set", f"model.network_args={json.dumps(TINY_SPADE)}"]
        assert main(args) == 0
    (root / "masks").mkdir()
    for i, label in enumerate(masks(2)[1]):
        save_label_png(label.numpy(), root / "masks" / f"m{i}.png")
    return root


@pytest.mark.parametrize("method", RIVALS)
def test_train_prints_parameters_and_synthesize_writes_images(trained, tmp_path, method, capsys):
    assert main(["synthesize", str(trained / "masks"), "--model", str(trained / method), "--out",
                 str(tmp_path / "out"), "--samples", "2", "--steps", "2"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["m0_0.png", "m0_1.png", "m1_0.png", "m1_1.png"]


@pytest.mark.parametrize("method", RIVALS)
@pytest.mark.parametrize("command", ["segment", "evaluate"])
def test_segmenting_with_a_synthesis_only_model_is_one_line_and_writes_nothing(trained, tmp_path, method, command,
                                                                              capsys):
    out = tmp_path / "out"
    args = ([command, str(trained / "masks"), "--model", str(trained / method), "--out", str(out)]
            if command == "segment" else [command, "--model", str(trained / method), "--data", "shapes",
                                          "--out", str(out / "m.json")])
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "only synthesizes" in err[0] and method in err[0]
    assert not out.exists()


@pytest.mark.parametrize("value", ["-1", "nan", "inf"])
def test_synthesize_refuses_bad_guidance_before_writing(trained, tmp_path, value, capsys):
    out = tmp_path / "out"
    assert main(["synthesize", str(trained / "masks"), "--model", str(trained / "noise-flow"), "--out", str(out),
                 f"--guidance={value}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "guidance" in err[0] and not out.exists()


def test_synthesize_refuses_options_that_do_not_apply_to_the_model(trained, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["synthesize", str(trained / "masks"), "--model", str(trained / "spade"), "--out", str(out),
                 "--guidance", "2"]) == 2
    assert main(["synthesize", str(trained / "masks"), "--model", str(trained / "spade"), "--out", str(out),
                 "--solver", "heun"]) == 2
    assert main(["synthesize", str(trained / "masks"), "--model", str(trained / "noise-flow"), "--out", str(out),
                 "--solver", "snap"]) == 2
    assert not out.exists()


def test_train_refuses_an_unknown_method_in_one_line(tmp_path, capsys):
    assert main(tiny_train_args(tmp_path / "m") + ["--method", "pix2pix"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pix2pix" in err[0] and "noise-flow" in err[0]
    assert not (tmp_path / "m").exists()

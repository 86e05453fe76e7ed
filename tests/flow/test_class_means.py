"""The class-mean source of the image part (model.image_source=class-means): the means, the painting, the scene
bank, and the model that trains and synthesizes with them."""

import pytest
import torch
from torch import nn

from semflow import ModelConfig, SemFlowPipeline
from semflow.data import open_dataset
from semflow.errors import SemflowInputError
from semflow.flow.class_means import SceneBank, class_means, paint

from tiny import TINY_NETWORK


def two_region_scene():
    """Latents (1, 2, 4, 4) and labels (1, 4, 4): class 0 on the left half, class 2 on the right, with the ignore
    label 3 on one right pixel; class 1 absent."""
    labels = torch.tensor([[0, 0, 2, 2]] * 4).unsqueeze(0)
    labels[0, 0, 3] = 3
    z = torch.arange(32, dtype=torch.float32).reshape(1, 2, 4, 4)
    return z, labels


def test_class_means_are_the_means_of_each_class_and_of_the_scene():
    z, labels = two_region_scene()
    means, present = class_means(z, labels, num_classes=3)
    assert means.shape == (1, 4, 2) and present.tolist() == [[True, False, True, True]]
    for c in (0, 2):
        where = labels[0] == c
        torch.testing.assert_close(means[0, c], z[0][:, where].mean(dim=1))
    torch.testing.assert_close(means[0, 1], torch.zeros(2))
    torch.testing.assert_close(means[0, 3], z[0].flatten(1).mean(dim=1))  # the whole scene, ignore pixel included


def test_labels_are_resized_to_the_latent_grid():
    z = torch.zeros(1, 1, 2, 2)
    z[0, 0, :, 1] = 5.0
    labels = torch.tensor([[0, 0, 1, 1]] * 4).unsqueeze(0)  # (1, 4, 4): the right half class 1
    means, _ = class_means(z, labels, num_classes=2)
    assert means[0, :2, 0].tolist() == [0.0, 5.0]
    assert paint(labels, means, (2, 2)).equal(z)


def test_paint_is_the_mask_in_its_class_means_and_ignore_takes_the_scene_mean():
    z, labels = two_region_scene()
    means, _ = class_means(z, labels, num_classes=3)
    painted = paint(labels, means, (4, 4))
    assert painted.shape == z.shape
    for c in (0, 2):
        assert torch.equal(painted[0][:, labels[0] == c], means[0, c].unsqueeze(1).expand(-1, int((labels[0] == c).sum())))
    assert torch.equal(painted[0, :, 0, 3], means[0, 3])
    # A scene whose latents are constant on each class (no ignore label) is its own painting.
    whole = labels.clamp(max=2)
    flat = paint(whole, means, (4, 4))
    assert torch.allclose(paint(whole, class_means(flat, whole, 3)[0], (4, 4)), flat)


def test_bank_draws_whole_scenes_and_fills_absent_classes():
    means = torch.tensor([[[1.0], [0.0], [3.0]], [[5.0], [7.0], [6.0]], [[9.0], [0.0], [9.0]]])  # (3, K+1=3, 1)
    present = torch.tensor([[True, False, True], [True, True, True], [True, False, True]])
    bank = SceneBank(means, present)
    assert bank.fallback[:, 0].tolist() == [5.0, 7.0, 6.0]  # class 1's mean over the one scene that has it
    drawn = bank.draw(300, torch.Generator().manual_seed(0))
    assert drawn.shape == (300, 3, 1)
    rows = {tuple(row[:, 0].tolist()) for row in drawn}
    assert rows == {(1.0, 7.0, 3.0), (5.0, 7.0, 6.0), (9.0, 7.0, 9.0)}
    again = bank.draw(300, torch.Generator().manual_seed(0))
    assert torch.equal(drawn, again)


def test_bank_round_trips_and_refuses_what_does_not_fit(tmp_path):
    bank = SceneBank(torch.randn(4, 3, 2), torch.rand(4, 3) > 0.3)
    bank.save(tmp_path)
    loaded = SceneBank.load(tmp_path, num_classes=2, channels=2)
    assert torch.equal(loaded.means, bank.means) and torch.equal(loaded.present, bank.present)
    with pytest.raises(SemflowInputError, match=r"expected 'means' \(N, 6, 2\)"):
        SceneBank.load(tmp_path, num_classes=5, channels=2)
    with pytest.raises(SemflowInputError, match="scenes.safetensors .*missing"):
        SceneBank.load(tmp_path / "nowhere", num_classes=2, channels=2)
    (tmp_path / SceneBank.FILE).write_bytes(b"not safetensors")
    with pytest.raises(SemflowInputError, match="not a readable safetensors file"):
        SceneBank.load(tmp_path, num_classes=2, channels=2)


@pytest.mark.parametrize("config, match", [
    ({"image_source": "colours"}, "model.image_source='colours'; expected one of fill, class-means"),
    ({"image_source": "class-means"}, "model.image_source=class-means applies only to model.state=stacked"),
])
def test_bad_image_source_is_refused(config, match):
    with pytest.raises(SemflowInputError, match=match):
        ModelConfig(**config)


class Zero(nn.Module):
    """A network whose velocity is zero everywhere: a solve stays at its start."""

    def __init__(self, channels):
        super().__init__()
        self.channels, self.w = channels, nn.Parameter(torch.zeros(()))

    def forward(self, sample, timestep):
        return torch.zeros(sample.shape[0], self.channels, *sample.shape[2:]) * self.w


def painting_model(network=None):
    torch.manual_seed(0)
    info = open_dataset("shapes", "test").info
    config = ModelConfig(size=[16, 16], network_args=TINY_NETWORK, state="stacked", image_source="class-means")
    model = SemFlowPipeline.from_config(config, info)
    if network is not None:
        model = SemFlowPipeline(model.codec, network, config, info)
    return model.eval()


def shapes(n, size=16):
    ds = open_dataset(f"shapes:size={size}", "test")
    images = torch.stack([ds[i]["image"] for i in range(n)]).float() / 255
    return images, torch.stack([ds[i]["label"] for i in range(n)])


def test_training_starts_synthesis_from_the_image_painted_with_its_own_class_means():
    model = painting_model()
    images, labels = shapes(4)
    seen = {}

    class Spy(nn.Module):
        def __init__(self):
            super().__init__()
            self.velocity = model.velocity

        def forward(self, z, t, full=False):
            seen["z"], seen["t"] = z.clone(), t.clone()
            return self.velocity(z, t, full=full)

    spy = Spy()
    model.posterior_training_loss(model.codec.image_posterior(images * 1.0), labels, trainable=spy,
                                  generator=torch.Generator().manual_seed(0))
    z, t = seen["z"], seen["t"]
    # No fill (state_noise 0): the image part is (1 - t) E(image) + t * painting, exactly.
    image = images * 2 - 1
    painting = paint(labels, class_means(image, labels, model.palette.num_classes)[0], (16, 16))
    tb = t.view(-1, 1, 1, 1)
    torch.testing.assert_close(z[:, :3], (1 - tb) * image + tb * painting)


def test_synthesis_paints_each_sample_with_a_drawn_scene_and_is_saved_with_the_model(tmp_path):
    model = painting_model(Zero(6))
    with pytest.raises(SemflowInputError, match="this model has none: train it"):
        model.synthesize(shapes(1)[1], steps=2)
    images, labels = shapes(6)
    model.scenes = SceneBank(*class_means(images * 2 - 1, labels, model.palette.num_classes))
    out = model.synthesize(labels[:2], steps=3, samples=4, seed=0).images  # (2, 4, 3, 16, 16)
    # The zero field keeps the start: every sample is its mask painted with one bank scene (absent classes filled).
    filled = torch.where(model.scenes.present.unsqueeze(-1), model.scenes.means, model.scenes.fallback)
    paintings = [(paint(labels[:2], row.expand(2, -1, -1), (16, 16)) + 1) / 2 for row in filled]
    for b in range(2):
        for k in range(4):
            assert any(torch.allclose(out[b, k], p[b].clamp(0, 1), atol=1e-6) for p in paintings)
    assert not torch.allclose(out[0, 0], out[0, 1]) or not torch.allclose(out[0, 0], out[0, 2])
    painted = painting_model()
    painted.scenes = model.scenes
    painted.save_pretrained(tmp_path / "p")
    loaded = SemFlowPipeline.from_pretrained(tmp_path / "p")
    assert torch.equal(loaded.scenes.means, model.scenes.means)
    a = painted.synthesize(labels[:2], steps=2, samples=2, seed=3).images
    assert torch.equal(loaded.synthesize(labels[:2], steps=2, samples=2, seed=3).images, a)
    (tmp_path / "p" / SceneBank.FILE).unlink()
    with pytest.raises(SemflowInputError, match="needs scenes.safetensors"):
        SemFlowPipeline.from_pretrained(tmp_path / "p")


def test_semflow_train_collects_the_bank(tmp_path):
    from semflow.config import load_run_config
    from semflow.training.loop import train

    config = load_run_config(None, ["train.steps=2", "train.batch_size=4", "model.size=[16,16]",
                                    f"model.network_args={__import__('json').dumps(TINY_NETWORK)}",
                                    "model.image_source=class-means"], preset_name="recommended")
    train(config, tmp_path / "run", dataset=open_dataset("shapes:size=16", "test"), progress_bar=False)
    model = SemFlowPipeline.from_pretrained(tmp_path / "run")
    ds = open_dataset("shapes:size=16", "test")
    assert model.scenes.means.shape == (len(ds), model.palette.num_classes + 1, 3)
    images, labels = shapes(len(ds))
    expected, present = class_means(model.encode_input(images), labels, model.palette.num_classes)
    torch.testing.assert_close(model.scenes.means, expected)
    assert torch.equal(model.scenes.present, present)


def test_given_colours_paint_every_sample_of_their_mask():
    model = painting_model(Zero(6))
    images, labels = shapes(6)
    model.scenes = SceneBank(*class_means(images * 2 - 1, labels, model.palette.num_classes))
    colors = model.scene_colors(images[:1], labels[:1])  # (1, K+1, 3): the first scene's own colours
    assert colors.shape == (1, model.palette.num_classes + 1, 3)
    out = model.synthesize(labels[1:3], steps=2, samples=2, seed=0, colors=colors).images
    for b in range(2):
        expected = ((paint(labels[1 + b:2 + b], colors, (16, 16)) + 1) / 2).clamp(0, 1)[0]
        for k in range(2):  # no fill: the zero field keeps exactly the painting
            torch.testing.assert_close(out[b, k], expected, atol=1e-6, rtol=0)
    with pytest.raises(SemflowInputError, match=r"colors of shape \(3, 6, 3\); expected \(B or 1, 6, 3\) for 2"):
        model.synthesize(labels[1:3], steps=2, colors=torch.zeros(3, 6, 3))
    info = open_dataset("shapes", "test").info
    fill = SemFlowPipeline.from_config(ModelConfig(size=[16, 16], network_args=TINY_NETWORK, state="stacked"), info)
    with pytest.raises(SemflowInputError, match="colors apply to a model trained with model.image_source=class-means"):
        fill.synthesize(labels[:1], steps=2, colors=colors)


def test_synthesize_cli_paints_with_a_reference_photo(tmp_path, capsys):
    from PIL import Image

    from semflow.cli.main import main

    model = painting_model()
    images, labels = shapes(4)
    model.scenes = SceneBank(*class_means(images * 2 - 1, labels, model.palette.num_classes))
    model.save_pretrained(tmp_path / "m")
    Image.fromarray(labels[0].numpy().astype("uint8")).save(tmp_path / "mask.png")
    Image.fromarray((images[1] * 255).byte().permute(1, 2, 0).numpy()).save(tmp_path / "photo.png")
    args = ["synthesize", "--model", str(tmp_path / "m"), str(tmp_path / "mask.png"), "--steps", "2", "--samples", "2"]
    assert main(args + ["--colors-from", str(tmp_path / "photo.png"), "--out", str(tmp_path / "a")]) == 0
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["mask_0.png", "mask_1.png"]
    assert main(args + ["--colors-from", str(tmp_path / "nothing.png"), "--out", str(tmp_path / "b")]) == 2
    assert "nothing.png" in capsys.readouterr().err and not (tmp_path / "b").exists()
    info = open_dataset("shapes", "test").info
    SemFlowPipeline.from_config(ModelConfig(size=[16, 16], network_args=TINY_NETWORK, state="stacked"),
                                info).save_pretrained(tmp_path / "fill")
    args[2] = str(tmp_path / "fill")
    assert main(args + ["--colors-from", str(tmp_path / "photo.png"), "--out", str(tmp_path / "c")]) == 2
    assert "needs a model trained with model.image_source=class-means" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()

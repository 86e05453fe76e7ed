"""``semflow import-authors`` end to end on a tiny SD-like folder, checked against the authors' inference.

``authors_timesteps`` restates, in our words, the integer timesteps the authors' release gives its UNet:
``torch.arange(1, 1000, 1000 // N)`` (``M`` entries), then for segmentation ``arange - 1`` ascending
(``0, s, ..., (M-1)s``) and for synthesis ``1000 - max + arange`` descending (``1000, 1000 - s, ...``), with
``s = 1000 // N`` and Euler steps of ``1 / M``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from semflow.cli.main import main
from semflow.data.celebamask import INFO as CELEBAMASK
from semflow.networks.null_embedding import compute_null_embedding, save_null_embedding
from semflow.pseudomask.perturbation import perturb
from semflow.models.semflow import SemFlowPipeline
from tiny_sd import HAS_TRANSFORMERS, _one_thread, null_embedding, tiny_sd, write_authors_unet  # noqa: F401

SIZE = 16


def authors_timesteps(n: int, direction: str) -> list[int]:
    """The network timesteps of the authors' N-step Euler loop (module docstring)."""
    stride = 1000 // n
    steps = len(range(1, 1000, stride))
    if direction == "segment":
        return [k * stride for k in range(steps)]
    return [1000 - k * stride for k in range(steps)]


def test_authors_grid_matches_semflow_when_n_divides_1000() -> None:
    for n in (1, 2, 4, 5, 10, 20, 25, 50, 100):
        assert authors_timesteps(n, "segment") == [1000 * k // n for k in range(n)]
        assert authors_timesteps(n, "synthesize") == [1000 - 1000 * k // n for k in range(n)]
    # Otherwise the authors' grid is not uniform in 1/N: 7 requested steps are 8 of stride 142.
    assert authors_timesteps(7, "segment") == [142 * k for k in range(8)]


@pytest.fixture(scope="module")
def imported(tiny_sd: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module, torch.Tensor]:
    """The model folder made by the command, the released UNet it holds and the null embedding it should hold."""
    tmp = tmp_path_factory.mktemp("authors")
    weights, unet = write_authors_unet(tmp / "release")
    args = ["import-authors", "--unet", str(weights), "--sd", str(tiny_sd), "--out", str(tmp / "model"),
            "--size", str(SIZE), str(SIZE)]
    if HAS_TRANSFORMERS:
        null = compute_null_embedding(tiny_sd)
    else:
        null = null_embedding()
        save_null_embedding(null, tmp / "null.safetensors")
        args += ["--null-embedding", str(tmp / "null.safetensors")]
    assert main(args) == 0
    return tmp / "model", unet, null


@pytest.fixture(scope="module")
def pipe(imported: tuple[Path, torch.nn.Module, torch.Tensor]) -> SemFlowPipeline:
    return SemFlowPipeline.from_pretrained(imported[0])


def test_the_folder_holds_the_authors_setup(imported: tuple, pipe: SemFlowPipeline) -> None:
    _, unet, null = imported
    assert (pipe.config.codec, pipe.config.network) == ("autoencoder-kl", "unet2d-condition")
    assert (pipe.palette.k, pipe.palette.s, pipe.beta, pipe.config.time_scale) == (6, 50, 6.375, 1000.0)
    assert pipe.dataset == CELEBAMASK and pipe.palette.num_classes == 19
    assert torch.equal(pipe.network.null_embedding, null)
    loaded = pipe.network.unet.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in unet.state_dict().items())
    assert pipe.network.unet.config.cross_attention_dim == null.shape[-1]


def images_and_labels() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand(2, 3, SIZE, SIZE, generator=g), torch.randint(0, 19, (2, SIZE, SIZE), generator=g)


@pytest.mark.parametrize("n", [1, 4])
def test_network_receives_the_authors_timesteps(pipe: SemFlowPipeline, n: int) -> None:
    seen: list[torch.Tensor] = []

    def spy(module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        seen.append(args[1])
        context = kwargs["encoder_hidden_states"]
        assert torch.equal(context, pipe.network.null_embedding.expand(args[0].shape[0], -1, -1))

    images, labels = images_and_labels()
    handle = pipe.network.unet.register_forward_pre_hook(spy, with_kwargs=True)
    try:
        pipe.segment(images, steps=n)
        segment = [float(t.unique()) for t in seen]
        seen.clear()
        pipe.synthesize(labels, steps=n, seed=0)
        synthesize = [float(t.unique()) for t in seen]
    finally:
        handle.remove()
    assert segment == authors_timesteps(n, "segment")  # exactly: 1000 * k / N is exact in float32 here
    assert synthesize == authors_timesteps(n, "synthesize")


def test_segment_and_synthesize_reproduce_the_authors_loop(imported: tuple, pipe: SemFlowPipeline) -> None:
    _, unet, null = imported
    vae = pipe.codec.vae
    scale = vae.config.scaling_factor
    images, labels = images_and_labels()
    n = 4

    def authors_loop(z: torch.Tensor, direction: str) -> torch.Tensor:
        sign = 1.0 if direction == "segment" else -1.0
        context = null.repeat(z.shape[0], 1, 1)
        for t in authors_timesteps(n, direction):
            z = z + sign / n * unet(z, torch.tensor(t), context).sample
        return vae.decode(z / scale).sample  # [-1, 1]

    with torch.no_grad():
        z0 = vae.encode(images * 2 - 1).latent_dist.mode() * scale
        expected_mask = authors_loop(z0, "segment") * 127.5 + 127.5
        noisy = perturb(pipe.palette.encode(labels), 6.375, generator=torch.Generator().manual_seed(3))
        z1 = vae.encode(noisy / 127.5 - 1).latent_dist.mode() * scale
        expected_image = ((authors_loop(z1, "synthesize") + 1) / 2).clamp(0, 1)

    seg = pipe.segment(images, steps=n)
    torch.testing.assert_close(seg.pseudo_mask, expected_mask, atol=1e-3, rtol=1e-5)  # pixel levels
    assert seg.labels.shape == (2, SIZE, SIZE) and int(seg.labels.max()) < 19
    out = pipe.synthesize(labels, steps=n, seed=3).images
    assert out.shape == (2, 1, 3, SIZE, SIZE)
    torch.testing.assert_close(out[:, 0], expected_image, atol=1e-5, rtol=1e-5)


def test_a_folder_beside_a_config_and_bad_paths(tiny_sd: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    weights, unet = write_authors_unet(tmp_path / "release", seed=6)
    unet.save_config(str(tmp_path / "release"))  # config.json beside the .bin, as their demo folder has it
    save_null_embedding(null_embedding(), tmp_path / "null.safetensors")
    common = ["--sd", str(tiny_sd), "--null-embedding", str(tmp_path / "null.safetensors"), "--size", "16", "16"]
    assert main(["import-authors", "--unet", str(tmp_path / "release"), *common, "--out", str(tmp_path / "m")]) == 0
    loaded = SemFlowPipeline.from_pretrained(tmp_path / "m").network.unet.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in unet.state_dict().items())

    capsys.readouterr()
    assert main(["import-authors", "--unet", "wang-chaoyang/semflow", *common, "--out", str(tmp_path / "x")]) == 2
    assert "wang-chaoyang/semflow does not exist" in capsys.readouterr().err
    assert main(["import-authors", "--unet", str(weights), "--sd", str(tmp_path / "nosd"), "--size", "16", "16",
                 "--null-embedding", str(tmp_path / "null.safetensors"), "--out", str(tmp_path / "y")]) == 2
    assert "nosd" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


class _Marker:
    """Unpickling this creates a file: proof that a pickle ran code."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


@pytest.mark.parametrize("where", ["bare file", "folder with config", "null embedding"])
def test_a_malicious_pickle_is_refused_in_one_line(tiny_sd: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                                   where: str) -> None:
    marker = tmp_path / "pwned"
    weights, unet = write_authors_unet(tmp_path / "release", seed=6)
    save_null_embedding(null_embedding(), tmp_path / "null.safetensors")
    null = tmp_path / "null.safetensors"
    if where == "null embedding":
        null = tmp_path / "null.pt"
        torch.save({"e": _Marker(marker)}, null)
    else:
        torch.save({"conv_in.weight": _Marker(marker)}, weights)
        if where == "folder with config":
            unet.save_config(str(tmp_path / "release"))
    unet_arg = weights if where == "bare file" else tmp_path / "release"
    code = main(["import-authors", "--unet", str(unet_arg), "--sd", str(tiny_sd), "--null-embedding", str(null),
                 "--size", "16", "16", "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert code == 2 and not marker.exists() and not (tmp_path / "m").exists()
    lines = [line for line in err.strip().splitlines() if line.startswith("semflow")]
    assert len(lines) == 1 and "refused" in lines[0] and "Traceback" not in err
    assert "weights_only=False" not in err

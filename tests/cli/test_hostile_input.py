"""Hostile and careless input to the commands (issue 13): damaged model folders, extreme arguments, outputs that
would collide or replace an input, two writers, 16-bit images. Each ends in one line on stderr, exit code 2
(1 for a full disk), and nothing written. Round three (issue 23) at the end."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from semflow.cli.main import main
from semflow.data import open_dataset
from semflow.outputs import FolderLock
from tiny import tiny_train_args


def error_lines(err: str) -> list[str]:
    """stderr without progress bars; a clean failure is one line and no traceback."""
    assert "Traceback" not in err
    return [line for line in err.strip().splitlines() if line.startswith("semflow")]


def refused(capsys, args: list[str], needle: str, code: int = 2) -> str:
    assert main(args) == code
    err = capsys.readouterr().err
    lines = error_lines(err)
    assert len(lines) == 1 and needle in lines[0], err
    return lines[0]


def images(folder: Path, n: int = 2, size: int = 20) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    ds = open_dataset(f"shapes:size={size}", "val")
    for i in range(n):
        s = ds[i]
        Image.fromarray(s["image"].permute(1, 2, 0).numpy()).save(folder / f"img{i}.png")
    return folder


def masks(folder: Path, n: int = 2, size: int = 20) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    ds = open_dataset(f"shapes:size={size}", "val")
    for i in range(n):
        Image.fromarray(ds[i]["label"].numpy().astype(np.uint8)).save(folder / f"mask{i}.png")
    return folder


# ---------------------------------------------------------------------------------------------- damaged model folders
def edit_meta(folder: Path, change) -> None:
    path = folder / "semflow_config.json"
    meta = json.loads(path.read_text())
    path.write_text(json.dumps(change(meta)))


def edit_weights(folder: Path, change) -> None:
    path = folder / "network" / "diffusion_pytorch_model.safetensors"
    state = load_file(str(path))
    save_file(change(state), str(path))


def _first(state):
    return next(iter(state))


def _set(state, key, value):
    return {**state, key: value}


DAMAGE = {
    "no model key": (lambda f: edit_meta(f, lambda m: {k: v for k, v in m.items() if k != "model"}), "'model' is missing"),
    "no dataset key": (lambda f: edit_meta(f, lambda m: {k: v for k, v in m.items() if k != "dataset"}),
                       "'dataset' is missing"),
    "model is a list": (lambda f: edit_meta(f, lambda m: {**m, "model": [1, 2]}), "'model' is a list"),
    "config is a list": (lambda f: (f / "semflow_config.json").write_text("[1, 2]"), "expected a JSON object"),
    "size is a string": (lambda f: edit_meta(f, lambda m: {**m, "model": {**m["model"], "size": "big"}}),
                         "model.size"),
    "dataset lacks names": (lambda f: edit_meta(f, lambda m: {**m, "dataset": {"name": "x"}}), "dataset"),
    "unknown codec key": (lambda f: edit_meta(f, lambda m: {**m, "codec_config": {"foo": 1}}), "codec_config"),
    "unknown network key": (lambda f: (f / "network" / "config.json").write_text(json.dumps(
        {**json.loads((f / "network" / "config.json").read_text()), "bogus_key": 1})), "bogus_key"),
    "network config not JSON": (lambda f: (f / "network" / "config.json").write_text("{"), "corrupt JSON"),
    "weights lack a tensor": (lambda f: edit_weights(f, lambda s: {k: v for k, v in list(s.items())[1:]}),
                              "missing"),
    "weights of another shape": (lambda f: edit_weights(f, lambda s: _set(s, _first(s), torch.zeros(3))), "shape"),
    "truncated weights": (lambda f: (f / "network" / "diffusion_pytorch_model.safetensors").write_bytes(b"\x08\x00"),
                          "truncated or corrupt"),
    "NaN weights": (lambda f: edit_weights(f, lambda s: _set(s, _first(s), s[_first(s)] * float("nan"))), "NaN"),
    "inf weights": (lambda f: edit_weights(f, lambda s: _set(s, _first(s), s[_first(s)] + float("inf"))), "infinite"),
    "method tag of other weights": (lambda f: edit_meta(f, lambda m: {**m, "model": {**m["model"],
                                                                                  "method": "discriminative"}}),
                                    "model.method"),
    "pickle-only network": (lambda f: (torch.save(load_file(str(f / "network" / "diffusion_pytorch_model.safetensors")),
                                                  f / "network" / "diffusion_pytorch_model.bin"),
                                       (f / "network" / "diffusion_pytorch_model.safetensors").unlink()),
                            "safetensors only"),
    "palette differs from the weights'": (lambda f: edit_meta(f, lambda m: {**m, "palette": {**m["palette"], "k": 3,
                                                                                         "s": 127}}), "retrain"),
    "a pickle beside the safetensors": (lambda f: torch.save({}, f / "network" / "extra.bin"), "safetensors only"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_model_folder_is_one_line(tiny_model, tmp_path, capsys, damage):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder)
    do, needle = DAMAGE[damage]
    do(folder)
    out = tmp_path / "out"
    refused(capsys, ["segment", "--model", str(folder), str(images(tmp_path / "in")), "--out", str(out)], needle)
    assert not out.exists()


# ---------------------------------------------------------------------------------------------- arguments
@pytest.mark.parametrize("extra, needle", [
    (["--size", "33", "33"], "multiples of 2"),
    (["--lr", "nan"], "train.lr"),
    (["--lr", "-1"], "train.lr"),
    (["--max-minutes", "-1"], "train.max_minutes"),
    (["--max-minutes", "nan"], "train.max_minutes"),
    (["--set", "train.checkpoint_every=-1"], "train.checkpoint_every"),
    (["--set", "train.warmup_steps=-5"], "train.warmup_steps"),
    (["--set", "train.num_workers=-1"], "train.num_workers"),
    (["--set", "train.log_every=0"], "train.log_every"),
    (["--codec-path", "/some/vae"], "/some/vae do not exist"),  # the codec is read off the path: none there
    (["--codec", "pixel", "--codec-path", "/some/vae"], "pixel codec"),
    (["--palette", "spread", "--k", "4"], "--palette spread"),
    (["--set", "model.palette.kind=spread", "--set", "model.palette.k=4"], "palette.k"),
    (["--set", "model.size=[100000,100000]"], "model.size"),
    (["--set", "train.steps=1000000000000"], "train.steps"),
])
def test_bad_training_arguments_are_refused_before_anything_is_written(tmp_path, capsys, extra, needle):
    out = tmp_path / "m"
    refused(capsys, tiny_train_args(out) + extra, needle)
    assert not out.exists()  # no train_config.json, no empty folder


@pytest.mark.parametrize("extra", [["--num-workers", "-1"], ["--steps", "0"]])
def test_bad_numbers_are_refused_by_the_parser(tmp_path, extra):
    with pytest.raises(SystemExit) as stop:
        main(tiny_train_args(tmp_path / "m") + extra)
    assert stop.value.code == 2 and not (tmp_path / "m").exists()


def test_out_is_a_file(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    refused(capsys, tiny_train_args(tmp_path / "f"), "is a file")
    refused(capsys, tiny_train_args(tmp_path / "f" / "below"), "is a file")


def test_resume_and_overwrite_together(tmp_path, capsys):
    refused(capsys, tiny_train_args(tmp_path / "m") + ["--resume", "latest", "--overwrite"], "give one of them")


def test_solver_steps_beyond_the_bound(tiny_model, tmp_path):
    with pytest.raises(SystemExit) as stop:
        main(["segment", "--model", str(tiny_model), "--steps", str(10**12), str(images(tmp_path / "in")),
              "--out", str(tmp_path / "o")])
    assert stop.value.code == 2 and not (tmp_path / "o").exists()


def test_evaluate_steps_beyond_the_bound(tiny_model, tmp_path, capsys):
    refused(capsys, ["evaluate", "--model", str(tiny_model), "--data", "shapes:size=16,length=2", "--steps",
                     "1,100000000"], "--steps")


def test_evaluate_out_is_a_folder_before_the_evaluation(tiny_model, tmp_path, capsys, monkeypatch):
    import semflow.evaluation.segmentation as segmentation

    monkeypatch.setattr(segmentation, "evaluate_segmentation", lambda *a, **k: pytest.fail("evaluated first"))
    refused(capsys, ["evaluate", "--model", str(tiny_model), "--data", "shapes:size=16,length=2", "--out",
                     str(tmp_path)], "is a folder")


@pytest.mark.parametrize("extra, needle", [
    (["--k", "0"], "k=0"),
    (["--num-classes", "0"], "num_classes=0"),
    (["--k", "6", "--s", "51"], "white"),
])
def test_encode_mask_arguments(tmp_path, capsys, extra, needle):
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "m.png")
    refused(capsys, ["encode-mask", str(tmp_path / "m.png"), "--out", str(tmp_path / "c.png"), *extra], needle)
    assert not (tmp_path / "c.png").exists()


def test_encode_mask_out_is_a_folder(tmp_path, capsys):
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "m.png")
    refused(capsys, ["encode-mask", str(tmp_path / "m.png"), "--out", str(tmp_path)], "is a folder")


def readonly_mount(folder: Path) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)], capture_output=True,
                              timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def test_out_under_a_read_only_folder(tmp_path, capsys):
    ro = tmp_path / "ro"
    if readonly_mount(ro):
        try:
            refused(capsys, tiny_train_args(ro / "m"), "read-only")
        finally:
            subprocess.run(["umount", "-l", str(ro)], check=False)
    elif os.geteuid() != 0:
        ro.mkdir(exist_ok=True)
        ro.chmod(0o555)
        refused(capsys, tiny_train_args(ro / "m"), "read-only")
    else:
        pytest.skip("root without mount: no folder is read-only to this user")


# ---------------------------------------------------------------------------------------------- outputs
def test_segment_into_the_input_folder_is_refused(tiny_model, tmp_path, capsys):
    inputs = images(tmp_path / "in")
    before = {p.name: p.read_bytes() for p in inputs.iterdir()}
    refused(capsys, ["segment", "--model", str(tiny_model), str(inputs), "--out", str(inputs)], "replace the input")
    assert {p.name: p.read_bytes() for p in inputs.iterdir()} == before


def test_segment_outputs_that_collide_are_refused(tiny_model, tmp_path, capsys):
    inputs = images(tmp_path / "in", n=1)
    shutil.copy(inputs / "img0.png", inputs / "img0_color.png")
    out = tmp_path / "out"
    refused(capsys, ["segment", "--model", str(tiny_model), str(inputs), "--out", str(out)], "would both write")
    assert not out.exists()


def test_synthesize_into_the_mask_folder_is_refused(tiny_model, tmp_path, capsys):
    folder = masks(tmp_path / "in", n=1)
    shutil.copy(folder / "mask0.png", folder / "mask0_0.png")  # mask0's first image would replace it
    refused(capsys, ["synthesize", "--model", str(tiny_model), str(folder), "--out", str(folder)], "replace the input")


def test_a_second_writer_is_refused(tiny_model, tmp_path, capsys):
    out = tmp_path / "out"
    with FolderLock(out):
        line = refused(capsys, ["segment", "--model", str(tiny_model), str(images(tmp_path / "in")), "--out", str(out)],
                       "being written by another semflow process")
        assert str(os.getpid()) in line
        refused(capsys, tiny_train_args(out), "being written by another semflow process")
    assert main(["segment", "--model", str(tiny_model), "--steps", "1", str(tmp_path / "in"), "--out", str(out)]) == 0
    assert not (out / ".semflow.lock").exists()


def test_a_full_disk_in_synthesize_leaves_whole_masks_only(tiny_model, tmp_path, capsys, monkeypatch):
    import errno

    import semflow.files as files

    written = []
    real = files.write_image

    def full(array, path):
        if len(written) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(path)
        real(array, path)

    monkeypatch.setattr(files, "write_image", full)
    out = tmp_path / "out"
    refused(capsys, ["synthesize", "--model", str(tiny_model), "--steps", "1", "--samples", "2",
                     str(masks(tmp_path / "in", n=3)), "--out", str(out)], "images of 1 of 3 mask(s)", code=1)
    assert sorted(p.name for p in out.iterdir()) == ["mask0_0.png", "mask0_1.png"]


# ---------------------------------------------------------------------------------------------- images and memory
def test_a_16_bit_image_is_scaled_not_clipped(tiny_model, tmp_path):
    from semflow.io import read_rgb

    ramp = (np.arange(32 * 32).reshape(32, 32) * 64).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    rgb = read_rgb(tmp_path / "deep.png")
    assert rgb.dtype == np.uint8 and (rgb == 255).mean() < 0.01
    assert np.abs(rgb[..., 0].astype(int) - np.rint(ramp / 257)).max() == 0
    assert main(["segment", "--model", str(tiny_model), "--steps", "1", str(tmp_path / "deep.png"),
                 "--out", str(tmp_path / "o")]) == 0


def test_synthesized_images_are_resized_in_8_bits(tiny_model):
    from semflow.files import to_mask_size

    image = torch.rand(3, 16, 16)
    big = to_mask_size(image, (40, 24))
    assert big.dtype == np.uint8 and big.shape == (40, 24, 3)
    same = to_mask_size(image, (16, 16))
    assert np.array_equal(same, (image * 255).round().to(torch.uint8).permute(1, 2, 0).numpy())


def test_samples_beyond_the_bound(tiny_model, tmp_path):
    with pytest.raises(SystemExit) as stop:
        main(["synthesize", "--model", str(tiny_model), "--samples", str(10**9), str(masks(tmp_path / "in")),
              "--out", str(tmp_path / "o")])
    assert stop.value.code == 2 and not (tmp_path / "o").exists()


# ---------------------------------------------------------------------------------------------- round three (issue 23)
def test_a_yaml_alias_bomb_is_one_short_line(tmp_path, capsys):
    levels = ["a: &a [x, x, x, x, x, x, x, x, x]"] + [
        f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]" for a, b in zip("abcdefgh", "bcdefghi")]
    (tmp_path / "bomb.yaml").write_text("\n".join(levels) + "\nmodel: {size: *i}\n")  # 9^9 values in ~400 bytes
    assert (tmp_path / "bomb.yaml").stat().st_size < 500
    line = refused(capsys, tiny_train_args(tmp_path / "m") + ["--config", str(tmp_path / "bomb.yaml")],
                   "expands to more than")
    assert len(line) < 300 and not (tmp_path / "m").exists()


def test_a_long_value_is_cut_in_the_error_line(tmp_path, capsys):
    line = refused(capsys, tiny_train_args(tmp_path / "m") + ["--set", f"model.perturbation={'x' * 100000}"],
                   "model.perturbation")
    assert len(line) < 300


def test_a_python_tag_in_set_runs_nothing(tmp_path, capsys):
    marker = tmp_path / "pwned"
    refused(capsys, tiny_train_args(tmp_path / "m") + ["--set", f"train.lr=!!python/object/apply:os.system "
                                                                  f"['touch {marker}']"], "no !!python tags")
    assert not marker.exists() and not (tmp_path / "m").exists()


@pytest.mark.parametrize("extra", [["--seed", "-1"], ["--seed", str(2**32)]])
def test_a_seed_out_of_range_is_refused_by_the_parser(tmp_path, capsys, extra):
    with pytest.raises(SystemExit) as stop:
        main(tiny_train_args(tmp_path / "m") + extra)
    assert stop.value.code == 2 and "Traceback" not in capsys.readouterr().err


def test_a_seed_out_of_range_in_the_config_is_one_line(tmp_path, capsys):
    refused(capsys, tiny_train_args(tmp_path / "m") + ["--set", "train.seed=-1"], "train.seed=-1")
    assert not (tmp_path / "m").exists()


def test_synthesize_refuses_a_negative_seed(tiny_model, tmp_path):
    with pytest.raises(SystemExit) as stop:
        main(["synthesize", "--model", str(tiny_model), "--seed", "-1", str(masks(tmp_path / "in")),
              "--out", str(tmp_path / "o")])
    assert stop.value.code == 2 and not (tmp_path / "o").exists()


@pytest.mark.parametrize("how", ["same path", "hard link"])
def test_encode_mask_never_overwrites_its_input(tmp_path, capsys, how):
    mask = tmp_path / "m.png"
    Image.fromarray(np.arange(16, dtype=np.uint8).reshape(4, 4) % 5).save(mask)
    before = mask.read_bytes()
    out = mask if how == "same path" else tmp_path / "link.png"
    if how == "hard link":
        os.link(mask, out)
    refused(capsys, ["encode-mask", str(mask), "--out", str(out)], "is the input mask")
    assert mask.read_bytes() == before


def test_warnings_do_not_precede_the_error_line(tiny_model, tmp_path, capsys):
    from hostile import claimed_png

    # 95 megapixels claimed (Pillow warns of a decompression bomb above 89), then a broken data stream.
    bomb = claimed_png(tmp_path / "bomb.png", 10000, 9500, colour=False, rows=4)
    data = bytearray(bomb.read_bytes())
    start = data.index(b"IDAT") + 6
    data[start:start + 6] = b"\xff" * 6
    bomb.write_bytes(bytes(data))
    assert main(["segment", "--model", str(tiny_model), str(bomb), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [line for line in err.strip().splitlines() if line.startswith("semflow")]
    assert "Warning" not in err and "bomb.png" in err


def _config_keys() -> list[str]:
    """Every key a model folder's semflow_config.json must state, derived from the dataclasses that fill it."""
    import dataclasses

    from semflow.config import ModelConfig
    from semflow.data.base import DatasetInfo
    from semflow.models.base import META_KEYS

    keys = [f"model.{f.name}" for f in dataclasses.fields(ModelConfig)]
    keys += [f"model.palette.{f.name}" for f in dataclasses.fields(ModelConfig.__dataclass_fields__["palette"]
                                                                    .default_factory())]
    keys += [f"dataset.{f.name}" for f in dataclasses.fields(DatasetInfo)]
    return keys + list(META_KEYS)


def _without(meta: dict, dotted: str) -> dict:
    node = meta
    *path, last = dotted.split(".")
    for key in path:
        node = node[key]
    del node[last]
    return meta


# Keys a folder saved before they existed lacks, read at what the folder did: a model saved before the texture match
# kept the eta it was given (match_texture only acts after training, so it changes nothing a loaded model does).
UPGRADED = {"model.match_texture": False}


@pytest.mark.parametrize("key", [key for key in _config_keys() if key not in UPGRADED])
def test_a_model_folder_missing_any_key_is_refused(tiny_model, tmp_path, capsys, key):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder)
    edit_meta(folder, lambda m: _without(m, key))
    out = tmp_path / "out"
    line = refused(capsys, ["segment", "--model", str(folder), str(images(tmp_path / "in")), "--out", str(out)],
                   key.rsplit(".", 1)[-1])
    assert "missing" in line or "lacks" in line
    assert not out.exists()


@pytest.mark.parametrize("key", list(UPGRADED))
def test_a_folder_from_before_a_key_existed_reads_as_it_was_saved(tiny_model, tmp_path, key):
    from semflow.models.base import Segmenter

    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder)
    saved = json.loads((folder / "semflow_config.json").read_text())["model"]
    assert saved[key.split(".")[-1]] != UPGRADED[key]  # the folder states otherwise: the upgrade is what is read
    edit_meta(folder, lambda m: _without(m, key))
    config = Segmenter.from_pretrained(folder).config
    assert getattr(config, key.split(".")[-1]) == UPGRADED[key]
    assert config.synthesis_eta == saved["synthesis_eta"]


def test_every_key_of_a_saved_model_is_required(tiny_model):
    """The list above is the dataclasses' own: a saved folder holds each key (nothing is left to a default)."""
    meta = json.loads((tiny_model / "semflow_config.json").read_text())
    for key in _config_keys():
        node = meta
        for part in key.split("."):
            assert part in node, key
            node = node[part]


def _grow_network(folder: Path, channels: list[int]) -> None:
    path = folder / "network" / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "block_out_channels": channels}))


@pytest.mark.parametrize("channels, needle", [
    ([8000, 16000], "parameters; expected at most"),  # ~40 billion parameters: 160 GB if it were built
    ([1024, 2048], "config gives (1024,)"),  # fits the bound, not the weights file (read from its header)
    ([8, 100000], "expected at most 16384"),
])
def test_a_huge_network_config_is_refused_before_anything_is_allocated(tiny_model, tmp_path, capsys, monkeypatch,
                                                                      channels, needle):
    import functools

    from diffusers import UNet2DModel

    real = UNet2DModel.__init__

    @functools.wraps(real)
    def only_on_meta(self, *args, **kwargs):
        assert torch.get_default_device().type == "meta", "built a real network from an unchecked config"
        real(self, *args, **kwargs)

    monkeypatch.setattr(UNet2DModel, "__init__", only_on_meta)
    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder)
    _grow_network(folder, channels)
    refused(capsys, ["segment", "--model", str(folder), str(images(tmp_path / "in")), "--out", str(tmp_path / "o")],
            needle)


def test_a_huge_network_is_refused_when_training_too(tmp_path, capsys):
    refused(capsys, tiny_train_args(tmp_path / "m") + ["--set", "model.network_args.block_out_channels=[8000,16000]"],
            "parameters; expected at most")
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("link", ["network", "codec", "network/diffusion_pytorch_model.safetensors",
                                  "semflow_config.json"])
def test_a_symlink_out_of_the_model_folder_is_refused_unfollowed(tiny_model, tmp_path, capsys, link):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder)
    outside = tmp_path / "elsewhere"
    shutil.copytree(tiny_model, outside)
    target = folder / link
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    target.symlink_to("/" if link == "network" else outside / link)
    line = refused(capsys, ["segment", "--model", str(folder), str(images(tmp_path / "in")), "--out",
                            str(tmp_path / "o")], "outside the model folder")
    assert str(target) in line


def test_a_symlink_inside_the_model_folder_is_followed(tiny_model, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder)
    (folder / "network").rename(folder / "network-real")
    (folder / "network").symlink_to("network-real")
    assert main(["segment", "--model", str(folder), "--steps", "1", str(images(tmp_path / "in")), "--out",
                 str(tmp_path / "o")]) == 0


@pytest.mark.parametrize("kind", ["fifo", "/dev/zero"])
def test_weights_that_are_not_a_regular_file(tiny_model, tmp_path, capsys, kind):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder)
    weights = folder / "network" / "diffusion_pytorch_model.safetensors"
    weights.unlink()
    if kind == "fifo":
        os.mkfifo(weights)
        needle = "is a FIFO (named pipe); expected a regular file"
    else:
        weights.symlink_to("/dev/zero")
        needle = "outside the model folder"
    line = refused(capsys, ["segment", "--model", str(folder), str(images(tmp_path / "in")), "--out",
                            str(tmp_path / "o")], needle)
    assert "missing" not in line


def test_integer_weights_are_refused(tiny_model, tmp_path, capsys):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder)
    edit_weights(folder, lambda s: _set(s, _first(s), s[_first(s)].to(torch.int64)))
    refused(capsys, ["segment", "--model", str(folder), str(images(tmp_path / "in")), "--out", str(tmp_path / "o")],
            "is I64; expected floating-point weights")


def test_a_scaled_scene_bank_is_refused(tiny_model, tmp_path, capsys):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder)
    bank = load_file(str(folder / "scenes.safetensors"))
    save_file({**bank, "means": bank["means"] * 1e6}, str(folder / "scenes.safetensors"))
    refused(capsys, ["synthesize", "--model", str(folder), str(masks(tmp_path / "in")), "--out", str(tmp_path / "o")],
            "scenes.safetensors: a scene mean of magnitude")


def test_fewer_colours_than_classes_are_refused(tiny_model, tmp_path, capsys):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder)
    edit_meta(folder, lambda m: {**m, "dataset": {**m["dataset"], "colors": m["dataset"]["colors"][:3]}})
    refused(capsys, ["segment", "--model", str(folder), str(images(tmp_path / "in")), "--out", str(tmp_path / "o")],
            "3 colours for 5 classes")


def test_an_edited_beta_is_refused(tiny_model, tmp_path, capsys):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder)
    edit_meta(folder, lambda m: {**m, "beta": 20.0})
    refused(capsys, ["segment", "--model", str(folder), str(images(tmp_path / "in")), "--out", str(tmp_path / "o")],
            "beta 20.0 differs")


def test_weights_are_written_with_the_usual_permissions(tmp_path):
    from semflow import ModelConfig, SemFlowPipeline
    from tiny import TINY_NETWORK

    old = os.umask(0o022)
    try:
        pipe = SemFlowPipeline.from_config(ModelConfig(size=[16, 16], network_args=TINY_NETWORK),
                                           open_dataset("shapes", "test").info)
        pipe.save_pretrained(tmp_path / "fresh")
    finally:
        os.umask(old)
    modes = {p.relative_to(tmp_path).as_posix(): p.stat().st_mode & 0o777 for p in (tmp_path / "fresh").rglob("*")}
    assert (tmp_path / "fresh").stat().st_mode & 0o777 == 0o755
    assert modes["fresh/network/diffusion_pytorch_model.safetensors"] == 0o644
    assert all(mode in (0o644, 0o755) for mode in modes.values()), modes


def test_evaluate_out_is_locked(tiny_model, tmp_path, capsys):
    out = tmp_path / "metrics.json"
    with FolderLock.for_file(out):
        line = refused(capsys, ["evaluate", "--model", str(tiny_model), "--data", "shapes:size=16,length=2",
                                "--steps", "1", "--out", str(out)], "being written by another semflow process")
        assert str(out) in line and not out.exists()
    assert main(["evaluate", "--model", str(tiny_model), "--data", "shapes:size=16,length=2", "--steps", "1",
                 "--out", str(out)]) == 0
    assert out.is_file() and [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_demo_out_is_locked(tmp_path, capsys, monkeypatch):
    import semflow.training as training

    monkeypatch.setattr(training, "train", lambda *a, **k: pytest.fail("trained in a locked folder"))
    out = tmp_path / "demo"
    with FolderLock(out):
        refused(capsys, ["demo", "--out", str(out), "--no-progress"], "being written by another semflow process")


@pytest.fixture
def alarm():
    """Fail instead of hanging: SIGALRM after 60 s."""
    import signal

    def timeout(signum, frame):
        raise TimeoutError("hung")

    previous = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("where", ["given", "in the folder"])
@pytest.mark.parametrize("command", ["segment", "synthesize"])
def test_a_fifo_input_is_refused_not_read(tiny_model, tmp_path, capsys, alarm, where, command):
    folder = images(tmp_path / "in") if command == "segment" else masks(tmp_path / "in")
    os.mkfifo(folder / "pipe.png")  # opening it would block until a writer comes
    inputs = [str(folder / "pipe.png")] if where == "given" else [str(folder)]
    out = tmp_path / "o"
    refused(capsys, [command, "--model", str(tiny_model), "--steps", "1", *inputs, "--out", str(out)],
            "pipe.png is a FIFO (named pipe); expected a regular file")
    assert not out.exists()


@pytest.mark.parametrize("colours", ["display", "pseudo-mask"])
def test_synthesize_reads_colour_masks_in_the_models_colours(tiny_model, tmp_path, colours):
    """A colour mask in the data set's own colours (what the app's legend and a folder: data set use) or in the
    pseudo-mask palette gives the images of its class-index mask, seed for seed."""
    from semflow import SemFlowPipeline
    from semflow.rendering import colorize

    pipe = SemFlowPipeline.from_pretrained(tiny_model)
    index = masks(tmp_path / "index", n=1)
    label = np.asarray(Image.open(index / "mask0.png")).astype(np.int64)
    rgb = colorize(label, pipe) if colours == "display" else (
        pipe.palette.encode(torch.from_numpy(label)).round().byte().permute(1, 2, 0).numpy())
    (tmp_path / "colour").mkdir()
    Image.fromarray(rgb).save(tmp_path / "colour" / "mask0.png")
    for name in ("index", "colour"):
        assert main(["synthesize", "--model", str(tiny_model), "--steps", "1", "--samples", "2",
                     str(tmp_path / name), "--out", str(tmp_path / f"out-{name}")]) == 0
    for k in range(2):
        assert (tmp_path / "out-index" / f"mask0_{k}.png").read_bytes() == (
            tmp_path / "out-colour" / f"mask0_{k}.png").read_bytes()


def test_synthesize_refuses_a_colour_no_class_has(tiny_model, tmp_path, capsys):
    from semflow import SemFlowPipeline
    from semflow.rendering import colorize

    rgb = colorize(np.zeros((16, 16), np.int64), SemFlowPipeline.from_pretrained(tiny_model))
    rgb[4:12, 4:12] = (128, 0, 255)
    (tmp_path / "in").mkdir()
    Image.fromarray(rgb).save(tmp_path / "in" / "odd.png")
    refused(capsys, ["synthesize", "--model", str(tiny_model), str(tmp_path / "in"), "--out", str(tmp_path / "o")],
            "colour (128, 0, 255)")
    assert not (tmp_path / "o").exists()

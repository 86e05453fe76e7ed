"""Hostile checkpoints and folders (issue 13): crafted pickles never run, a folder belongs to one run, a truncated
newest checkpoint falls back to the previous one, and a full disk leaves no temporary files and loses no
complete checkpoint."""

from __future__ import annotations

import errno
import os
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator
from safetensors.torch import load_file

from semflow.cli.main import main
from tiny import tiny_train_args

ARGS = ["--set", "train.checkpoint_every=2", "--set", "train.log_every=1"]


class Marker:
    """Unpickling this creates a file: proof that a pickle ran code."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def train_args(out: Path, steps: int = 4, *extra: str) -> list[str]:
    return tiny_train_args(out, steps=steps) + ARGS + list(extra)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A 4-step run with checkpoints step_2 and step_4."""
    out = tmp_path_factory.mktemp("run") / "m"
    assert main(train_args(out)) == 0
    return out


@pytest.fixture
def run(finished, tmp_path) -> Path:
    copy = tmp_path / "m"
    shutil.copytree(finished, copy)
    return copy


def error_lines(err: str) -> list[str]:
    """stderr without progress bars; a clean failure is one line and no traceback."""
    assert "Traceback" not in err
    return [line for line in err.strip().splitlines() if line.startswith("semflow")]


def checkpoints(out: Path) -> list[str]:
    return sorted(p.name for p in (out / "checkpoints").iterdir())


# ---------------------------------------------------------------------------------------------- crafted pickles
@pytest.mark.parametrize("name", ["custom_checkpoint_0.pkl", "optimizer.bin", "scheduler.bin", "random_states_0.pkl"])
@pytest.mark.parametrize("how", ["latest", "path"])
def test_a_crafted_checkpoint_never_runs_code(run, tmp_path, capsys, name, how):
    marker = tmp_path / "pwned"
    torch.save({"state": Marker(marker)}, run / "checkpoints" / "step_0000004" / name)
    resume = "latest" if how == "latest" else str(run / "checkpoints" / "step_0000004")
    assert main(train_args(run, 6, "--resume", resume)) == 2
    err = capsys.readouterr().err
    assert not marker.exists()
    assert "refused" in err and len(error_lines(err)) == 1 and "weights_only=False" not in err


def test_semflow_writes_no_pickle_of_its_own(finished):
    names = {p.name for p in (finished / "checkpoints" / "step_0000004").iterdir()}
    assert not any(n.startswith("custom_checkpoint") for n in names)
    assert "progress.json" in names


def test_ema_state_is_saved_as_safetensors(tmp_path):
    out = tmp_path / "m"
    assert main(train_args(out, 2, "--ema-decay", "0.9")) == 0
    step = out / "checkpoints" / "step_0000002"
    assert (step / "ema.safetensors").is_file() and json.loads((step / "progress.json").read_text())["ema"]


# ---------------------------------------------------------------------------------------------- one run per folder
def test_a_new_configuration_over_checkpoints_is_refused(run, capsys):
    before = checkpoints(run)
    assert main(train_args(run, 4, "--lr", "0.01")) == 2
    err = capsys.readouterr().err
    assert "already holds checkpoints" in err and "--overwrite" in err
    assert checkpoints(run) == before


def test_the_same_configuration_started_afresh_is_refused_too(run, capsys):
    assert main(train_args(run, 4)) == 2
    assert "--resume latest" in capsys.readouterr().err


def test_overwrite_starts_over(run):
    assert main(train_args(run, 2, "--lr", "0.01", "--overwrite")) == 0
    assert checkpoints(run) == ["step_0000002"]
    assert json.loads((run / "train_config.json").read_text())["train"]["lr"] == 0.01


def test_resume_refuses_another_runs_checkpoint(run, capsys):
    assert main(train_args(run, 6, "--lr", "0.01", "--resume", "latest")) == 2
    err = capsys.readouterr().err
    assert "belongs to another run" in err and "train.lr" in err


def test_resume_with_another_architecture_is_one_line(run, capsys):
    args = train_args(run, 6, "--resume", "latest", "--set", "model.network_args.block_out_channels=[8,8]")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert len(error_lines(err)) == 1 and "model.network_args" in err


def test_a_finished_model_of_another_configuration_is_protected(tmp_path, capsys):
    out = tmp_path / "m"
    assert main(tiny_train_args(out)) == 0  # no checkpoints: checkpoint_every 500 > 2 steps
    assert main(tiny_train_args(out) + ["--lr", "0.02"]) == 2
    assert "another configuration" in capsys.readouterr().err
    assert main(tiny_train_args(out)) == 0  # the same configuration again: nothing is lost


def test_more_steps_resume_the_same_run(run):
    assert main(train_args(run, 6, "--resume", "latest")) == 0
    assert checkpoints(run) == ["step_0000004", "step_0000006"]


# ---------------------------------------------------------------------------------------------- damaged checkpoints
@pytest.mark.parametrize("part", ["model.safetensors", "optimizer.bin", "random_states_0.pkl", "progress.json"])
def test_a_truncated_newest_checkpoint_falls_back_to_the_previous(run, capsys, part):
    file = run / "checkpoints" / "step_0000004" / part
    file.write_bytes(file.read_bytes()[: len(file.read_bytes()) // 2])
    assert main(train_args(run, 6, "--resume", "latest")) == 0
    out = capsys.readouterr()
    assert "skipping an incomplete checkpoint" in out.out + out.err
    assert "resuming from" in out.out and "step_0000002" in out.out
    assert "broken-step_0000004" in checkpoints(run) and "step_0000006" in checkpoints(run)


def test_all_checkpoints_incomplete_is_one_line(run, capsys):
    for step in ("step_0000002", "step_0000004"):
        (run / "checkpoints" / step / "optimizer.bin").write_bytes(b"PK\x03\x04broken")
    assert main(train_args(run, 6, "--resume", "latest")) == 2
    assert "no complete checkpoint" in capsys.readouterr().err


def test_an_explicit_truncated_checkpoint_is_refused(run, capsys):
    file = run / "checkpoints" / "step_0000004" / "model.safetensors"
    file.write_bytes(file.read_bytes()[:100])
    assert main(train_args(run, 6, "--resume", str(file.parent))) == 2
    assert "truncated or corrupt" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- a full disk
def enospc(path) -> OSError:
    return OSError(errno.ENOSPC, "No space left on device", str(path))


def test_a_full_disk_during_a_checkpoint_keeps_the_last_good_one(run, monkeypatch, capsys):
    real = Accelerator.save_state

    def full(self, output_dir=None, **kwargs):
        if "0000006" in str(output_dir):
            Path(output_dir).mkdir(parents=True, exist_ok=True)
            (Path(output_dir) / "model.safetensors").write_bytes(b"half")
            raise enospc(Path(output_dir) / "optimizer.bin")
        return real(self, output_dir, **kwargs)

    monkeypatch.setattr(Accelerator, "save_state", full)
    assert main(train_args(run, 8, "--resume", "latest")) == 1
    err = capsys.readouterr().err
    assert len(error_lines(err)) == 1 and "No space left" in err and "step_0000004" in err
    assert checkpoints(run) == ["step_0000002", "step_0000004"]  # no .step_0000006.tmp, nothing deleted


def test_a_full_disk_at_the_final_save_says_what_is_kept(run, monkeypatch, capsys):
    from semflow.models.base import Segmenter

    def full(self, directory):
        raise enospc(Path(directory) / "network")

    monkeypatch.setattr(Segmenter, "save_pretrained", full)
    assert main(train_args(run, 6, "--resume", "latest")) == 1
    err = capsys.readouterr().err
    assert "the model of step 6 was not written" in err and "step_0000006" in err
    assert (run / "checkpoints" / "step_0000006").is_dir()


def mountable_tmpfs(folder: Path, size: str) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                              capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    """A 6 MB tmpfs (where this machine lets tests mount one; elsewhere the simulated cases above cover it)."""
    disk = tmp_path / "disk"
    if not mountable_tmpfs(disk, "6m"):
        pytest.skip("cannot mount a tmpfs here (needs root); the simulated ENOSPC tests cover this case")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path) -> Path:
    filler = disk / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return filler


def test_a_really_full_disk_during_training(finished, small_disk, capsys):
    out = small_disk / "m"
    shutil.copytree(finished, out)
    filler = fill(small_disk)
    assert main(train_args(out, 8, "--resume", "latest")) == 1
    err = capsys.readouterr().err
    assert len(error_lines(err)) == 1 and "No space left" in err
    assert not list((out / "checkpoints").glob(".*.tmp"))
    assert {"step_0000002", "step_0000004"} <= set(checkpoints(out))
    filler.unlink()  # room again: the run continues from what was kept
    assert main(train_args(out, 8, "--resume", "latest")) == 0
    assert "step_0000008" in checkpoints(out)
    load_file(str(out / "network" / "diffusion_pytorch_model.safetensors"))


def test_a_really_full_disk_during_segment(tiny_model, small_disk, tmp_path, capsys):
    import numpy as np
    from PIL import Image

    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(6):
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(inputs / f"{i}.png")
    fill(small_disk)
    os.truncate(small_disk / "filler", (small_disk / "filler").stat().st_size - 40_000)  # room for a few outputs
    out = small_disk / "out"
    assert main(["segment", "--model", str(tiny_model), "--steps", "1", str(inputs), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert len(error_lines(err)) == 1 and "were written, the others were not" in err
    written = sorted(p.name for p in out.iterdir() if p.suffix == ".png")
    stems = {n.split("_")[0].removesuffix(".png") for n in written}
    assert all(f"{s}.png" in written and f"{s}_color.png" in written for s in stems)  # complete pairs only
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]



# ---------------------------------------------------------------------------------------------- round three (issue 23)
@pytest.mark.parametrize("size", ["700k", "1200k", "1500k"])
def test_a_disk_that_fills_during_a_fresh_run(tmp_path, capsys, size):
    """The disk fills in a checkpoint's weights (safetensors' writer), its optimizer state (torch's zip writer) or
    the final model: one line, exit 1, no temporary folder, every checkpoint left complete."""
    disk = tmp_path / "disk"
    if not mountable_tmpfs(disk, size):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        out = disk / "m"
        code = main(train_args(out, 6, "--set", "train.checkpoints_total_limit=0"))
        err = capsys.readouterr().err
        assert code == 1, err
        assert len(error_lines(err)) == 1 and "No space left on device" in err
        assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
        for step in (out / "checkpoints").iterdir():
            assert step.name.startswith("step_") and (step / "progress.json").is_file()
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_safetensors_write_failure_at_the_final_save_is_one_line(run, monkeypatch, capsys):
    from safetensors import SafetensorError

    import semflow.training.loop as loop

    def full(self, directory):
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(loop.Segmenter, "save_pretrained", full)
    assert main(train_args(run, 6, "--resume", "latest")) == 1
    err = capsys.readouterr().err
    assert len(error_lines(err)) == 1 and "No space left on device" in err and "step_0000006" in err


def test_a_diverging_fresh_run_leaves_nothing(tmp_path, capsys):
    out = tmp_path / "m"
    assert main(tiny_train_args(out) + ["--lr", "1e30", "--set", "train.warmup_steps=0"]) == 2
    err = capsys.readouterr().err
    (line,) = error_lines(err)
    assert "the loss is nan" in line and "nothing of this run is kept" in line and "checkpoint is" not in line
    assert not out.exists()


def test_a_diverging_resumed_run_names_its_last_checkpoint(run, capsys):
    before = (run / "loss.csv").read_text()
    assert main(train_args(run, 8, "--resume", "latest", "--set", "train.lr=1e30")) == 2
    line = error_lines(capsys.readouterr().err)
    assert len(line) == 1 and "step_0000004" in line[0] and (run / "checkpoints" / "step_0000004").is_dir()
    assert (run / "train_config.json").is_file() and (run / "loss.csv").read_text().startswith(before.splitlines()[0])


def test_nan_weights_in_a_checkpoint_are_refused_on_resume(run, capsys):
    from safetensors.torch import save_file

    file = run / "checkpoints" / "step_0000004" / "model.safetensors"
    state = load_file(str(file))
    first = next(iter(state))
    save_file({**state, first: state[first] * float("nan")}, str(file))
    assert main(train_args(run, 6, "--resume", "latest")) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert "NaN or infinite" in line and first in line
    assert checkpoints(run) == ["step_0000002", "step_0000004"]


@pytest.mark.parametrize("change", [{"step": -5}, {"step": 10**12}, {"batch_in_epoch": -1}, {"epoch": 10**12},
                                    {"step": 3}])
def test_an_absurd_progress_file_is_refused(run, capsys, change):
    file = run / "checkpoints" / "step_0000004" / "progress.json"
    file.write_text(json.dumps({**json.loads(file.read_text()), **change}))
    before = {name: (run / name).read_bytes() for name in ("loss.csv", "network/diffusion_pytorch_model.safetensors")}
    assert main(train_args(run, 6, "--resume", "latest")) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert "progress.json" in line
    assert {name: (run / name).read_bytes() for name in before} == before


def test_a_batch_beyond_the_epoch_is_refused(run, capsys):
    file = run / "checkpoints" / "step_0000004" / "progress.json"
    file.write_text(json.dumps({**json.loads(file.read_text()), "batch_in_epoch": 1000}))
    assert main(train_args(run, 6, "--resume", "latest")) == 2
    assert "of an epoch of" in capsys.readouterr().err


def test_resuming_a_finished_run_changes_nothing(run, capsys):
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert main(train_args(run, 4, "--resume", "latest")) == 0
    out = capsys.readouterr().out
    assert "nothing to train" in out and "nan" not in out and "--steps above 4" in out
    after = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert {p for p in after if p.name != "train_config.json"} == {p for p in before if p.name != "train_config.json"}
    assert all(after[p] == before[p] for p in before if p.name != "train_config.json")


def test_checkpoints_have_the_usual_permissions(finished):
    old = os.umask(0o022)
    os.umask(old)
    for path in (finished / "checkpoints").rglob("*"):
        assert path.stat().st_mode & 0o777 == (0o777 if path.is_dir() else 0o666) & ~old, path
    assert (finished / "network" / "diffusion_pytorch_model.safetensors").stat().st_mode & 0o777 == 0o666 & ~old

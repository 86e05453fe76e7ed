"""Resumable training: a run killed in the middle and resumed ends with the same weights as one that was not."""

import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from semflow.cli.main import main

from tiny import tiny_train_args

STEPS = 24
ARGS = ["--set", "train.checkpoint_every=4", "--set", "train.log_every=1", "--ema-decay", "0.9"]


def weights(folder):
    return load_file(str(folder / "network" / "diffusion_pytorch_model.safetensors"))


def start(out):
    cmd = [sys.executable, "-m", "semflow", *tiny_train_args(out, steps=STEPS), *ARGS]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_for(path, proc, timeout=300):
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"training ended (code {proc.returncode}) before {path.name} appeared: "
                        f"{proc.stderr.read().decode()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"{path} did not appear in {timeout} s")
        time.sleep(0.01)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "m"
    assert main(tiny_train_args(out, steps=STEPS) + ARGS) == 0
    return out


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_interrupted_then_resumed_run_matches_an_uninterrupted_one(reference, tmp_path, how):
    out = tmp_path / "m"
    proc = start(out)
    wait_for(out / "checkpoints" / "step_0000008", proc)
    proc.send_signal(getattr(signal, how))
    code = proc.wait(timeout=300)
    if how == "SIGKILL":
        assert code == -signal.SIGKILL
    else:  # finishes the step, writes a checkpoint, exits 130
        assert code == 130, proc.stderr.read().decode()[-2000:]
        assert (out / "semflow_config.json").exists()
    assert not list((out / "checkpoints").glob(".*.tmp"))
    stopped_at = max(int(p.name.split("_")[1]) for p in (out / "checkpoints").glob("step_*"))
    assert 8 <= stopped_at < STEPS
    assert main(tiny_train_args(out, steps=STEPS) + ARGS + ["--resume", "latest"]) == 0
    ref, got = weights(reference), weights(out)
    assert ref.keys() == got.keys()
    for key in ref:
        assert torch.equal(ref[key], got[key]), key
    rows = (out / "loss.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == list(range(1, STEPS + 1))


def test_resume_from_a_folder_that_is_not_a_checkpoint(tmp_path, capsys):
    code = main(tiny_train_args(tmp_path / "m") + ["--resume", str(tmp_path)])
    assert code == 2 and "not a semflow checkpoint" in capsys.readouterr().err


def test_checkpoints_keep_the_last_k(reference):
    names = sorted(p.name for p in (reference / "checkpoints").iterdir())
    assert names == ["step_0000020", "step_0000024"]

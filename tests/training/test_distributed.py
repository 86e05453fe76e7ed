"""Two processes on the CPU (gloo) under ``accelerate launch --multi_gpu``: both train, their gradients are
averaged (parameters equal across processes), only process 0 writes the run's files, the lr schedule advances
once per optimiser step, a resumed run matches, and ``segment``/``synthesize`` split their inputs with the
same outputs as one process.

Which process wrote what is observed with a Python audit hook (``sys.addaudithook``) installed in every
process through a ``sitecustomize`` module on ``PYTHONPATH``; semflow itself has no test hooks. The hook sees
Python's file opens, renames and folder creations; files written by C++/Rust writers (``torch.save``'s zip
writer, safetensors) are seen through the renames and folders that put them in place.
"""

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from semflow.cli.main import main

from tiny import tiny_train_args

pytestmark = pytest.mark.skipif(
    not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
    reason="this torch build has no gloo backend for CPU process groups",
)

STEPS = 4
# 2 processes x 4 per process x 2 accumulation = 16 a step: 32 samples make 2 epochs.
RUN = ["--gradient-accumulation-steps", "2", "--scale-lr", "--ema-decay", "0.9",
       "--set", "train.checkpoint_every=2", "--set", "train.log_every=1"]

AUDIT = '''
import atexit, os, sys
_root, _log, _rank = os.environ.get("AUDIT_ROOT"), os.environ.get("AUDIT_LOG"), os.environ.get("RANK")
if _root and _log and _rank is not None:
    _root, _events = os.path.realpath(_root), []
    _WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def _hook(event, args):
        if event == "open":
            path, mode, flags = args
            if not ((isinstance(mode, str) and set(mode) & set("wax+")) or (mode is None and flags & _WRITE)):
                return
            paths = [path]
        elif event == "os.rename":
            paths = [args[1]]
        elif event in ("os.mkdir", "os.remove", "os.rmdir", "shutil.rmtree"):
            paths = [args[0]]
        else:
            return
        for path in paths:
            if isinstance(path, (str, bytes, os.PathLike)):
                full = os.path.realpath(os.fsdecode(path))
                if full.startswith(_root + os.sep):
                    _events.append(event + " " + os.path.relpath(full, _root))

    def _write():
        with open(os.path.join(_log, "rank" + _rank + ".txt"), "w") as f:
            f.write("\\n".join(_events))

    sys.addaudithook(_hook)
    atexit.register(_write)
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(args: list[str], tmp: Path, root: Path) -> tuple[subprocess.CompletedProcess, dict[int, list[str]]]:
    """``accelerate launch --multi_gpu --num_processes 2 -m semflow ARGS``; returns the result and, per
    process, the write events under ``root``."""
    hooks, log = tmp / "hooks", tmp / "audit"
    shutil.rmtree(log, ignore_errors=True)
    hooks.mkdir(exist_ok=True)
    log.mkdir()
    (hooks / "sitecustomize.py").write_text(AUDIT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(hooks), os.environ.get("PYTHONPATH")])),
           "AUDIT_ROOT": str(root), "AUDIT_LOG": str(log), "HF_HOME": str(tmp / "hf"),  # no user accelerate config
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(free_port()), "-m", "semflow", *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    events = {int(f.stem[4:]): f.read_text().splitlines() for f in log.glob("rank*.txt")}
    return proc, events


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "network" / "diffusion_pytorch_model.safetensors"))


def lr_column(folder: Path) -> list[float]:
    return [float(row.split(",")[2]) for row in (folder / "loss.csv").read_text().splitlines()[1:]]


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dist")
    proc, events = launch(tiny_train_args(tmp / "runs" / "m", steps=STEPS) + RUN, tmp, tmp / "runs")
    return tmp, proc, events


def test_both_processes_train_one_model(two_processes):
    _, proc, events = two_processes
    assert "process 0 of 2 (MULTI_CPU" in proc.stderr and "process 1 of 2 (MULTI_CPU" in proc.stderr
    assert sorted(events) == [0, 1]
    assert "effective batch size 16 = 2 process(es) x 4 per process x 2 accumulation step(s); " \
           "lr 0.004 train.lr 0.001 x 4" in proc.stdout
    # Each process compared every parameter tensor's sum with the others' (accelerator.gather).
    assert "parameters identical on all 2 processes" in proc.stdout
    assert proc.stdout.count("trained 4 steps") == 1


def test_only_process_0_writes_the_run(two_processes):
    tmp, _, events = two_processes
    written = {line.split(" ", 1)[1] for line in events[0]}
    assert {"m/loss.csv", "m/train_config.json", "m/semflow_config.json"} <= written
    # Process 1 adds only its own RNG state to each checkpoint (and may create the folder): Accelerate's design.
    for line in events[1]:
        event, path = line.split(" ", 1)
        assert path == "m/checkpoints" or path.startswith("m/checkpoints/"), line
        assert event == "os.mkdir" or Path(path).name == "random_states_1.pkl", line
    assert (tmp / "runs" / "m" / "checkpoints" / "step_0000002" / "random_states_1.pkl").is_file()
    assert sorted(p.name for p in (tmp / "runs" / "m" / "checkpoints").iterdir()) == ["step_0000002", "step_0000004"]


def test_lr_schedule_advances_once_per_optimiser_step(two_processes, tmp_path):
    tmp, _, _ = two_processes
    assert main(tiny_train_args(tmp_path / "one", steps=STEPS) + ["--set", "train.log_every=1",
                                                                   "--set", "train.checkpoint_every=0"]) == 0
    one, two = lr_column(tmp_path / "one"), lr_column(tmp / "runs" / "m")
    assert len(two) == STEPS and two == pytest.approx([4 * lr for lr in one])  # x4: --scale-lr


def test_resumed_two_process_run_matches(two_processes):
    tmp, _, _ = two_processes
    resumed = tmp / "resumed" / "m"
    shutil.copytree(tmp / "runs" / "m" / "checkpoints" / "step_0000002", resumed / "checkpoints" / "step_0000002")
    launch(tiny_train_args(resumed, steps=STEPS) + RUN + ["--resume", "latest"], tmp, tmp / "resumed")
    ref, got = weights(tmp / "runs" / "m"), weights(resumed)
    for key in ref:
        assert torch.equal(ref[key], got[key]), key


@pytest.fixture(scope="module")
def masks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("masks")
    rng = np.random.default_rng(0)
    for i in range(5):  # odd: the shares differ in length
        Image.fromarray(rng.integers(0, 5, (12 + i, 16), dtype=np.uint8)).save(folder / f"m{i}.png")
    return folder


def test_segment_splits_inputs_with_the_same_outputs(tiny_model, masks, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(1)
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, (20, 18 + i, 3), dtype=np.uint8)).save(images / f"im{i}.png")
    args = ["segment", "--model", str(tiny_model), "--steps", "2", str(images)]
    assert main(args + ["--out", str(tmp_path / "one")]) == 0
    proc, events = launch(args + ["--batch-size", "2", "--out", str(tmp_path / "two")], tmp_path, tmp_path / "two")
    assert "in 2 processes" in proc.stdout
    shares = [{Path(line.split(" ", 1)[1]).name.split("_")[0].removesuffix(".png") for line in events[r]
               if line.startswith("os.rename")} for r in (0, 1)]
    assert shares == [{"im0", "im1", "im2"}, {"im3", "im4"}]
    one, two = sorted((tmp_path / "one").iterdir()), sorted((tmp_path / "two").iterdir())
    assert [p.name for p in one] == [p.name for p in two] and len(one) == 15  # NAME, NAME_color, NAME_vis
    for a, b in zip(one, two):
        if "_" not in a.stem:  # the labels: identical
            assert a.read_bytes() == b.read_bytes(), a.name
        else:  # pictures of float pseudo-masks: batches of other sizes round differently (about 1e-4 levels)
            diff = np.abs(np.asarray(Image.open(a), dtype=int) - np.asarray(Image.open(b), dtype=int))
            assert diff.max() <= 1, a.name


def test_synthesize_splits_inputs_with_the_same_outputs(tiny_model, masks, tmp_path):
    args = ["synthesize", "--model", str(tiny_model), "--steps", "2", "--samples", "2", "--seed", "5", str(masks)]
    assert main(args + ["--out", str(tmp_path / "one")]) == 0  # one batch of 5
    proc, _ = launch(args + ["--batch-size", "2", "--out", str(tmp_path / "two")], tmp_path, tmp_path / "two")
    assert "in 2 processes" in proc.stdout
    one, two = sorted((tmp_path / "one").iterdir()), sorted((tmp_path / "two").iterdir())
    assert [p.name for p in one] == [p.name for p in two] and len(one) == 10
    for a, b in zip(one, two):
        assert np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b))), a.name


def test_evaluate_sums_confusion_matrices_across_processes(tiny_model, tmp_path):
    """Two processes score 5 and 4 test images; the summed matrices give the one-process scores exactly
    (a mean of the two processes' mIoUs would not)."""
    import json

    args = ["evaluate", "--model", str(tiny_model), "--data", "shapes:size=16,length=9", "--steps", "1,2",
            "--batch-size", "2"]
    assert main(args + ["--out", str(tmp_path / "one.json")]) == 0
    proc, events = launch(args + ["--out", str(tmp_path / "two" / "two.json")], tmp_path, tmp_path / "two")
    one, two = json.loads((tmp_path / "one.json").read_text()), json.loads((tmp_path / "two" / "two.json").read_text())
    assert two["processes"] == 2 and two["num_images"] == one["num_images"] == 9
    for key in ("miou", "pixel_accuracy", "per_class_iou"):
        assert two[key] == one[key], key
    assert not any("two.json" in line for line in events.get(1, []))  # process 0 alone writes
    assert proc.stdout.count("| steps (snap) |") == 1  # the recommended model's own solver


class _FakeAccelerator:
    """Two processes whose parameter sums ``gather`` returns as given."""

    num_processes, device = 2, torch.device("cpu")

    def __init__(self, other: torch.Tensor | None) -> None:
        self.other = other

    def gather(self, rows: torch.Tensor) -> torch.Tensor:
        return torch.cat([rows, rows if self.other is None else self.other[None]])


def test_check_in_sync_raises_when_processes_differ():
    from semflow.training.loop import check_in_sync

    layer = torch.nn.Linear(3, 2)
    total = check_in_sync(_FakeAccelerator(None), layer)
    assert total == pytest.approx(float(layer.weight.detach().sum() + layer.bias.detach().sum()))
    sums = torch.stack([p.detach().double().sum() for p in layer.parameters()])
    with pytest.raises(RuntimeError, match="different parameters"):
        check_in_sync(_FakeAccelerator(sums + torch.tensor([0.0, 1e-12])), layer)


def test_precision_comes_from_the_config_or_the_launcher(monkeypatch):
    from semflow.training.launcher import resolve_precision
    from semflow.config import TrainConfig
    from semflow.errors import SemflowInputError

    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")  # accelerate launch --mixed_precision bf16
    assert resolve_precision(TrainConfig()) == "bf16"
    assert resolve_precision(TrainConfig(mixed_precision="bf16")) == "bf16"
    with pytest.raises(SemflowInputError, match="launcher asks for 'bf16'"):
        resolve_precision(TrainConfig(mixed_precision="fp16"))
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "no")
    assert resolve_precision(TrainConfig(mixed_precision="fp16")) == "fp16"


FAIL = '''
import errno, os, sys
_rank, _match = os.environ.get("RANK"), os.environ.get("FAIL_WRITES")
if _rank == "0" and _match:
    def _hook(event, args):
        if event == "open" and isinstance(args[0], str) and _match in os.path.basename(args[0]):
            mode = args[1]
            if (isinstance(mode, str) and set(mode) & set("wax+")) or (mode is None and args[2] & (os.O_WRONLY | os.O_RDWR)):
                raise OSError(errno.ENOSPC, "No space left on device", args[0])
    sys.addaudithook(_hook)
'''


@pytest.mark.parametrize("match", ["progress.json", "loss.csv"])
def test_a_write_failure_on_process_0_stops_every_process(tmp_path, match):
    """Process 0 cannot write a checkpoint's progress.json (or loss.csv); process 1 has nothing to write there. Both
    learn it at the same point and stop with one line each, instead of process 1 waiting for ever (issue 23)."""
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(FAIL)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(hooks), os.environ.get("PYTHONPATH")])),
           "FAIL_WRITES": match, "HF_HOME": str(tmp_path / "hf"), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(free_port()), "-m", "semflow",
           *tiny_train_args(tmp_path / "m", steps=STEPS), *RUN]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)  # a hang would time out
    assert proc.returncode != 0
    # One error line from each process (counted, not split: two processes writing one pipe may join their lines).
    errors = proc.stderr.split("semflow train: error:")[1:]
    assert len(errors) == 2 and any("No space left on device" in e for e in errors), proc.stderr[-3000:]
    assert not list((tmp_path / "m").rglob("*.tmp")) if (tmp_path / "m").exists() else True

"""The training loop through ``semflow.training`` (not the command line): setup, steps, finish."""

import json
import math

import pytest
import torch

from semflow.config import ModelConfig, RunConfig, TrainConfig
from semflow.data import open_dataset
from semflow.models.base import Segmenter
from semflow.training import LOSS_FILE, TRAIN_CONFIG_FILE, list_checkpoints, setup, train, train_step
from tiny import TINY_NETWORK

DATA = "shapes:size=16,length=8"


def config(method="semflow", steps=3, **train_args) -> RunConfig:
    return RunConfig(model=ModelConfig(size=[16, 16], network_args=TINY_NETWORK, method=method),
                     train=TrainConfig(data=DATA, steps=steps, batch_size=4, warmup_steps=1, log_every=1,
                                       checkpoint_every=2, **train_args))


@pytest.mark.parametrize("method", ["semflow", "dsm", "discriminative"])
def test_train_writes_a_loadable_folder_of_the_method_and_logs_every_step(tmp_path, method):
    model, result = train(config(method), tmp_path / "run", progress_bar=False)
    assert (result.steps, result.interrupted, result.effective_batch_size) == (3, False, 4)
    loaded = Segmenter.from_pretrained(tmp_path / "run")
    assert type(loaded) is type(model) and loaded.method == method
    for name, p in model.trainable.state_dict().items():
        assert torch.equal(p, loaded.trainable.state_dict()[name])
    rows = (tmp_path / "run" / LOSS_FILE).read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == [1, 2, 3] and math.isfinite(result.final_loss)
    assert json.loads((tmp_path / "run" / TRAIN_CONFIG_FILE).read_text())["model"]["method"] == method
    assert [p.name for p in list_checkpoints(tmp_path / "run")] == ["step_0000002"]


def test_train_step_changes_only_the_trainable_weights_and_follows_the_seeded_noise(tmp_path):
    runs = [setup(config(), tmp_path / f"run{i}") for i in range(2)]
    batch = next(iter(runs[0].loader))
    losses = [train_step(run, batch) for run in runs]
    assert torch.equal(losses[0], losses[1])  # same seed, same batch position: the same noise
    assert runs[0].progress.batch_in_epoch == 1 and runs[0].progress.step == 0  # the loop counts steps
    # The first step runs at lr 0 (warm-up starts there); the second moves the trainable weights only.
    before = {k: v.clone() for k, v in runs[0].model.state_dict().items()}
    second = train_step(runs[0], batch)
    changed = {k for k, v in runs[0].model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(k.startswith(("network.", "velocity.")) for k in changed)
    # The next micro-batch draws other noise (the generator is reseeded per batch, not reused).
    assert not torch.equal(second, losses[0])


def test_an_empty_split_is_an_input_error(tmp_path):
    from semflow.errors import SemflowInputError

    empty = open_dataset("shapes:size=16,length=8", "train")
    empty.length = 0
    with pytest.raises(SemflowInputError, match="empty"):
        train(config(), tmp_path / "run", dataset=empty, progress_bar=False)


def test_the_texture_match_runs_once_after_training_and_is_saved(tmp_path, monkeypatch, capsys):
    from semflow.flow import texture

    monkeypatch.setattr(texture, "STEPS", 3)
    run = config(steps=2)
    run.model = ModelConfig(size=[16, 16], network_args=TINY_NETWORK, state="stacked", state_noise=0.1,
                            synthesis_eta=1.0, match_texture=True)
    measured = []
    plain = texture.match_texture
    monkeypatch.setattr(texture, "match_texture", lambda *a, **k: measured.append(1) or plain(*a, **k))
    model, _ = train(run, tmp_path / "run", progress_bar=False)
    line = [row for row in capsys.readouterr().out.splitlines() if row.startswith("synthesis eta")]
    assert measured == [1] and len(line) == 1
    saved = json.loads((tmp_path / "run" / "semflow_config.json").read_text())["model"]
    assert saved["match_texture"] and f"synthesis eta {saved['synthesis_eta']:g} matches" in line[0]
    assert Segmenter.from_pretrained(tmp_path / "run").config.synthesis_eta == model.config.synthesis_eta
    train(run, tmp_path / "run", progress_bar=False, resume="latest")  # finished: nothing trained, nothing measured
    assert measured == [1]


def test_what_a_method_settles_after_training_reads_the_split_as_evaluation_does(tmp_path):
    """The decoded cache holds shrunk images (resized twice on the way to the model size); the texture match reads
    the split as opened, each image resized once, as the test images are scored."""
    import numpy as np
    from PIL import Image

    from semflow.data.cache import DecodedCache
    from semflow.data.transforms import resize_pair

    root = tmp_path / "data"
    for folder in ("train", "trainannot"):
        (root / folder).mkdir(parents=True)
    for i in range(4):
        noise = np.random.default_rng(i).integers(0, 256, (40, 60, 3), dtype=np.uint8)
        Image.fromarray(noise).save(root / "train" / f"{i}.png")
        labels = (np.arange(2400).reshape(40, 60) // 7 % 12).astype(np.uint8)
        Image.fromarray(labels).save(root / "trainannot" / f"{i}.png")
    run = config(steps=1, cache=True)
    run.train.data = f"camvid:{root}"
    started = setup(run, tmp_path / "run")
    try:
        assert isinstance(started.pairs.dataset, DecodedCache)  # training reads the cache
        assert not isinstance(started.dataset, DecodedCache)
        opened = open_dataset(f"camvid:{root}", "train")
        assert torch.equal(resize_pair(started.dataset[0], (16, 16))[0], resize_pair(opened[0], (16, 16))[0])
    finally:
        started.release()

"""One way from a seed to a generator: ``semflow synthesize --seed``, ``evaluate_synthesis(seed=)``, training."""

import numpy as np
import torch
from PIL import Image

from semflow.cli.main import main
from semflow.io import read_image
from semflow.models.base import Segmenter
from semflow.seeding import make_generator, mix


def test_a_seed_alone_is_used_as_is_and_keys_give_distinct_streams():
    assert torch.equal(torch.rand(4, generator=make_generator(5)), torch.rand(4, generator=torch.Generator().manual_seed(5)))
    streams = [torch.rand(4, generator=make_generator(5, *keys)) for keys in [(0,), (1,), (0, 1), (1, 0)]]
    assert all(not torch.equal(a, b) for i, a in enumerate(streams) for b in streams[i + 1:])
    assert mix(5, 0) == mix(5, 0) and 0 <= mix(-3, 2) < 2**47


def test_synthesize_command_uses_make_generator_of_seed_and_mask_index(tiny_model, tmp_path):
    masks = tmp_path / "masks"
    masks.mkdir()
    rng = np.random.default_rng(0)
    labels = [rng.integers(0, 5, (16, 16), dtype=np.uint8) for _ in range(3)]
    for i, label in enumerate(labels):
        Image.fromarray(label).save(masks / f"m{i}.png")
    assert main(["synthesize", str(masks), "--model", str(tiny_model), "--out", str(tmp_path / "out"), "--steps", "2",
                 "--seed", "4", "--batch-size", "2", "--no-channels-last"]) == 0
    model = Segmenter.from_pretrained(tiny_model)
    images = model.synthesize(torch.from_numpy(np.stack(labels)).long(), steps=2,
                              generator=[make_generator(4, i) for i in range(3)]).images
    for i in range(3):
        expected = (images[i, 0] * 255).round().clamp(0, 255).to(torch.uint8)
        assert (read_image(tmp_path / "out" / f"m{i}_0.png").int() - expected.int()).abs().max() <= 1

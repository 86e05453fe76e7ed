"""How close a synthesizer's samples lie to the training set: a check for retrieval instead of generation.

For a few evenly spaced test masks, each model draws one sample (seed 0, 25 steps). Printed per mask: the mean
absolute pixel difference (L1, images in ``[0, 1]`` at the model size) of the sample to the real test image of
that mask, and to its nearest training image; and, for scale, of the real test image to its nearest training
image. A sample as close to a training image as the real frame is to its neighbours is a training frame recalled,
not an image drawn (CamVid's test frames come from the same drives as some training frames).

Example::

    python bench/nearest_training_frame.py \
        --models runs/paper-taef2/models/semflow-paper runs/paper-taef2/models/semflow

Prints a Markdown table and writes ``bench/results/nearest_training_frame.json``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from semflow import SemFlowPipeline
from semflow.data import open_dataset
from semflow.data.transforms import resize_pair
from semflow.evaluation.subset import evenly_spaced_indices

from timing import add_threads_arg, markdown, write


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", type=Path, required=True, help="model folders (of one size)")
    parser.add_argument("--data", default="camvid:../shared/data/camvid", help="data set SPEC")
    parser.add_argument("--masks", type=int, default=6, help="evenly spaced test masks (default 6)")
    parser.add_argument("--out", type=Path, default=None, help="JSON path")
    add_threads_arg(parser)
    return parser.parse_args(argv)


def nearest_l1(images: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
    """``(B,)``: each image's mean absolute difference to its nearest image of ``bank`` ``(N, 3, h, w)``."""
    return torch.stack([(image - bank).abs().mean((1, 2, 3)).min() for image in images])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    pipes = {str(folder): SemFlowPipeline.from_pretrained(folder) for folder in args.models}
    size = tuple(next(iter(pipes.values())).config.size)
    test, train = open_dataset(args.data, split="test"), open_dataset(args.data)
    picked = evenly_spaced_indices(len(test), args.masks) or list(range(len(test)))
    pairs = [resize_pair(test[i], size) for i in picked]
    images, labels = torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])
    bank = torch.stack([resize_pair(train[i], size)[0] for i in range(len(train))])
    report = {"test_indices": picked, "real_to_training": nearest_l1(images, bank).tolist(), "models": {}}
    rows = [["real test image", "—", *[f"{v:.3f}" for v in report["real_to_training"]]]]
    for name, pipe in pipes.items():
        samples = pipe.synthesize(labels, steps=25, samples=1, seed=0).images[:, 0]
        to_real = (samples - images).abs().mean((1, 2, 3)).tolist()
        to_training = nearest_l1(samples, bank).tolist()
        report["models"][name] = {"to_real": to_real, "to_training": to_training}
        rows.append([name, " / ".join(f"{v:.3f}" for v in to_real), *[f"{v:.3f}" for v in to_training]])
    print(markdown(["image", "L1 to the real test image", *[f"nearest training, mask {i}" for i in picked]], rows))
    print(f"wrote {write('nearest_training_frame', report, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

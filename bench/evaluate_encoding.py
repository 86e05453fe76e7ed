"""``evaluate_segmentation`` encodes each batch once for all step counts: what that saves against encoding per step count.

Scoring N step counts used to run ``segment`` N times per batch, each encoding the same images again. With a latent
codec the encoder is a large part of a short solve. This program scores the same images both ways, in alternating
rounds (``timing.py``), checks that the confusion matrices are identical, and reports CPU seconds per image.

Example (the issue-4 TAEF2 model; any model folder works)::

    nice -n 19 python bench/evaluate_encoding.py --model runs/taef2 --data camvid:../shared/data/camvid

Prints a Markdown table and writes ``bench/results/evaluate_encoding.json``.
"""

from __future__ import annotations

import argparse

import torch
from timing import add_threads_arg, interleaved, markdown, write

from semflow.data import open_dataset
from semflow.data.transforms import resize_label
from semflow.evaluation.segmentation import collate_at_size, evaluate_segmentation
from semflow.evaluation.metrics import ConfusionMatrix
from semflow.models.semflow import SemFlowPipeline


def per_step_encoding(pipe: SemFlowPipeline, batches: list[dict], steps: list[int]) -> dict[int, ConfusionMatrix]:
    """The former loop: ``segment`` (which encodes) once per step count."""
    info = pipe.dataset
    matrices = {n: ConfusionMatrix(info.num_classes, info.ignore_index) for n in steps}
    for batch in batches:
        for n in steps:
            for pred, label in zip(pipe.segment(batch["images"], steps=n).labels, batch["labels"]):
                matrices[n].update(resize_label(pred, tuple(label.shape)), label)
    return matrices


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--images", type=int, default=32, help="first N test images (default 32)")
    parser.add_argument("--steps", default="1,5,25")
    parser.add_argument("--rounds", type=int, default=3)
    add_threads_arg(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pipe = SemFlowPipeline.from_pretrained(args.model)
    split = open_dataset(args.data, "test")
    subset = torch.utils.data.Subset(split, range(min(args.images, len(split))))
    steps = [int(n) for n in args.steps.split(",")]
    batches = [collate_at_size([subset[i] for i in range(s, min(s + 16, len(subset)))], pipe.size)
               for s in range(0, len(subset), 16)]
    once = evaluate_segmentation(pipe, split, steps, indices=list(range(len(subset))))
    again = per_step_encoding(pipe, batches, steps)
    identical = all(torch.equal(once.matrices[n].matrix, again[n].matrix) for n in steps)
    times = interleaved({
        "encode once per batch": lambda: evaluate_segmentation(pipe, split, steps, indices=list(range(len(subset)))),
        "encode per step count": lambda: per_step_encoding(pipe, batches, steps),
    }, rounds=args.rounds)
    rows = [[name, t / len(subset)] for name, t in times.items()]
    speedup = times["encode per step count"] / times["encode once per batch"]
    print(markdown(["scoring", "CPU s / image"], rows))
    print(f"speed-up {speedup:.2f}x; confusion matrices identical: {identical}")
    write("evaluate_encoding", {"model": args.model, "data": args.data, "images": len(subset), "steps": steps,
                                "seconds_per_image": {k: v / len(subset) for k, v in times.items()},
                                "speedup": speedup, "identical": identical})


if __name__ == "__main__":
    main()

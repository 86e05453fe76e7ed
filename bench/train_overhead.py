"""Training overhead: a ``semflow train`` step against the bare forward + backward of its network.

The limit of a training step is the network's forward and backward pass on the batch; everything else --
loading and augmenting the data, the codec, the pseudo-mask and its perturbation, the path, Accelerate's
bookkeeping, the optimiser, the loss log -- is overhead. This program times, in alternating rounds:

* ``bare``: ``v(z_t, t)``, the MSE and ``backward()`` on one fixed batch of the same shape;
* ``bare + AdamW``: the same plus the (fused) optimiser step;
* ``trainer``: steps of :func:`semflow.cli.trainer.train` itself (data from the built-in shapes, the pixel
  codec, gradient clipping, logging every 10 steps), timed from the ``elapsed_s`` column of its ``loss.csv``
  between step 10 and the last (set-up and warm-up excluded);

and, once, the parts: a batch from the data loader, and the loss's preparation (codec, pseudo-mask,
perturbation, path). The default model is the demo's (pixel space, 32x32, batch 16, UNet 16-32-64).

Example::

    nice -n 19 python bench/train_overhead.py

Prints a Markdown table and writes ``bench/results/train_overhead.json``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from semflow.cli.demo import demo_config
from semflow.cli.trainer import TrainingPairs, train
from semflow.data import open_dataset
from semflow.pipeline import SemFlowPipeline
from semflow.rectified_flow import flow_matching_loss, sample_path, sample_time

from timing import interleaved, markdown, seconds, write

LOG_EVERY = 10  # the default train.log_every


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=32, help="image side in pixels (the demo's 32)")
    parser.add_argument("--batch-size", type=int, default=16, help="batch size (the demo's 16)")
    parser.add_argument("--steps", type=int, default=30, help="trainer steps per round (the first 10 are left out)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of bare and trainer steps")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default bench/results/train_overhead.json)")
    return parser.parse_args(argv)


def trainer_step_seconds(config, steps: int) -> float:
    """Seconds per step of a real run with the default logging (every 10 steps), from ``loss.csv``'s
    ``elapsed_s`` between step 10 and the last (the first 10 steps, with the warm-up, are left out)."""
    config.train.steps, config.train.log_every, config.train.checkpoint_every = steps, LOG_EVERY, 0
    with tempfile.TemporaryDirectory() as tmp:
        train(config, Path(tmp) / "m", progress_bar=False)
        rows = [r.split(",") for r in (Path(tmp) / "m" / "loss.csv").read_text().splitlines()[1:]]
    (s0, e0), (s1, e1) = (int(rows[0][0]), float(rows[0][3])), (int(rows[-1][0]), float(rows[-1][3]))
    return (e1 - e0) / (s1 - s0)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    config = demo_config(args.size, seed=0)
    config.train.batch_size = args.batch_size
    dataset = open_dataset(config.train.data, "train")
    pipe = SemFlowPipeline.from_config(config.model, dataset.info)
    optimizer = torch.optim.AdamW(pipe.velocity.parameters(), lr=1e-4, fused=True)  # as the trainer makes it
    pairs = TrainingPairs(dataset, pipe.size, seed=0)
    images, labels = next(iter(DataLoader(pairs, batch_size=args.batch_size, shuffle=True)))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        z0, z1 = pipe.encode_images(images), pipe.encode_masks(labels, generator)
    path = sample_path(z0, z1, sample_time(z0.shape[0], z0.device, generator))

    def bare(step: bool = False) -> None:
        flow_matching_loss(pipe.velocity(path.z_t, path.t), path).backward()
        if step:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def prepare() -> None:
        pipe.training_loss  # noqa: B018  (the parts of training_loss before the network, as it runs them)
        with torch.no_grad():
            posterior = pipe.codec.image_posterior(images)
            a = posterior.sample(generator)
            b = pipe.encode_masks(labels, generator=generator)
        sample_path(a, b, sample_time(a.shape[0], a.device, generator))

    loader = DataLoader(pairs, batch_size=args.batch_size, shuffle=True, drop_last=True)

    def load_batches() -> None:
        for i, _ in enumerate(loader):
            if i == 7:
                break

    began = time.perf_counter()
    bare_s, bare_opt_s, trainer_s = [], [], []
    for _ in range(args.rounds):
        times = interleaved({"bare": bare, "bare_opt": lambda: bare(True)}, rounds=1, repeat=10)
        bare_s.append(times["bare"])
        bare_opt_s.append(times["bare_opt"])
        trainer_s.append(trainer_step_seconds(config, args.steps))
    data_s = statistics.median(seconds(load_batches, 3)) / 8
    prepare_s = statistics.median(seconds(prepare, 10))
    bare_m, bare_opt_m, trainer_m = (statistics.median(x) for x in (bare_s, bare_opt_s, trainer_s))
    report = {
        "model": {"size": args.size, "batch_size": args.batch_size, "codec": "pixel",
                  "network_args": config.model.network_args,
                  "parameters": sum(p.numel() for p in pipe.velocity.parameters())},
        "seconds": {"bare_forward_backward": bare_m, "bare_with_adamw": bare_opt_m, "trainer_step": trainer_m,
                    "data_batch": data_s, "loss_preparation": prepare_s},
        "rounds": {"bare_forward_backward": bare_s, "bare_with_adamw": bare_opt_s, "trainer_step": trainer_s},
        "overhead_vs_bare": trainer_m / bare_m - 1,
        "overhead_vs_bare_with_adamw": trainer_m / bare_opt_m - 1,
        "wall_seconds": time.perf_counter() - began,
    }
    path_json = write("train_overhead", report, args.out)
    rows = [
        ["bare forward + backward (the limit)", bare_m * 1e3, 1.0],
        ["bare forward + backward + AdamW", bare_opt_m * 1e3, bare_opt_m / bare_m],
        ["`semflow train` step", trainer_m * 1e3, trainer_m / bare_m],
        ["  of which: a batch from the loader", data_s * 1e3, data_s / bare_m],
        ["  of which: codec, pseudo-mask, perturbation, path", prepare_s * 1e3, prepare_s / bare_m],
    ]
    print(markdown(["pixel space, " f"{args.size}x{args.size}, batch {args.batch_size}", "ms", "x bare"], rows))
    print(f"\noverhead of a training step over the bare forward+backward: {report['overhead_vs_bare']:+.1%} "
          f"(over forward+backward+AdamW: {report['overhead_vs_bare_with_adamw']:+.1%}); wrote {path_json}")


if __name__ == "__main__":
    main()

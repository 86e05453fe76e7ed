"""Training overhead: a ``semflow train`` step against the bare forward + backward of its network.

The limit of a training step is the network's forward and backward pass on the batch; everything else --
loading and augmenting the data, the codec, the pseudo-mask and its perturbation, the path, Accelerate's
bookkeeping, the optimiser, the loss log -- is overhead. This program times, in alternating rounds:

* ``bare``: ``v(z_t, t)``, the MSE and ``backward()`` on one fixed batch of the same shape;
* ``bare + AdamW``: the same plus the (fused) optimiser step;
* ``trainer``: steps of :func:`semflow.training.train` itself (data from the built-in shapes, the pixel
  codec, gradient clipping, logging every 10 steps): the CPU time of a run of ``10 + --steps`` steps minus
  that of a run of 10, divided by ``--steps`` (set-up and warm-up cancel);

and, once, the parts: a batch from the data loader, and the loss's preparation (codec, pseudo-mask,
perturbation, path). The default model is the demo's (pixel space, 32x32, batch 16, UNet 16-32-64). The
overhead reported is the median over rounds of each round's ratio: a round's two sides run seconds apart.
Times are this process's CPU seconds on one torch thread (see ``timing.py``), robust to neighbours' load.

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

from semflow.config import demo_config
from semflow.training import train
from semflow.training.data import TrainingPairs
from semflow.data import open_dataset
from semflow.models.semflow import SemFlowPipeline
from semflow.flow.path import flow_matching_loss, sample_path, sample_time

from timing import add_threads_arg, interleaved, markdown, seconds, write

LOG_EVERY = 10  # the default train.log_every


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=32, help="image side in pixels (the demo's 32)")
    parser.add_argument("--batch-size", type=int, default=16, help="batch size (the demo's 16)")
    parser.add_argument("--steps", type=int, default=20,
                        help="trainer steps measured per round (a run of 10 and one of 10 + this)")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds of bare and trainer steps")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default bench/results/train_overhead.json)")
    add_threads_arg(parser)
    return parser.parse_args(argv)


def trainer_cpu_seconds(config, steps: int) -> float:
    """CPU seconds of this process for a whole run of ``steps`` steps, set-up included, logging every 10."""
    config.train.steps, config.train.log_every, config.train.checkpoint_every = steps, LOG_EVERY, 0
    with tempfile.TemporaryDirectory() as tmp:
        start = time.process_time()
        train(config, Path(tmp) / "m", progress_bar=False)
        return time.process_time() - start


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    config = demo_config(args.size, seed=0)
    config.train.batch_size = args.batch_size
    dataset = open_dataset(config.train.data, "train")
    pipe = SemFlowPipeline.from_config(config.model, dataset.info)
    optimizer = torch.optim.AdamW(pipe.trainable.parameters(), lr=1e-4, fused=True)  # as the trainer makes it
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
        # As many bare calls as the trainer's measured steps, one of each kind in turn, right before them.
        times = interleaved({"bare": bare, "bare_opt": lambda: bare(True)}, rounds=args.steps)
        bare_s.append(times["bare"])
        bare_opt_s.append(times["bare_opt"])
        # The marginal cost of a step: the difference of two runs cancels the set-up and the first steps.
        short = trainer_cpu_seconds(config, LOG_EVERY)
        trainer_s.append((trainer_cpu_seconds(config, LOG_EVERY + args.steps) - short) / args.steps)
    data_s = statistics.median(seconds(load_batches, 3, time.process_time)) / 8
    prepare_s = statistics.median(seconds(prepare, 10, time.process_time))
    bare_m, bare_opt_m, trainer_m = (statistics.median(x) for x in (bare_s, bare_opt_s, trainer_s))
    # The headline: the median over rounds of each round's ratio (both sides of a ratio measured seconds apart).
    ratio = statistics.median(t / b for t, b in zip(trainer_s, bare_s))
    ratio_opt = statistics.median(t / b for t, b in zip(trainer_s, bare_opt_s))
    report = {
        "model": {"size": args.size, "batch_size": args.batch_size, "codec": "pixel",
                  "network_args": config.model.network_args,
                  "parameters": sum(p.numel() for p in pipe.trainable.parameters())},
        "clock": "CPU seconds of the process (time.process_time), one torch thread",
        "seconds": {"bare_forward_backward": bare_m, "bare_with_adamw": bare_opt_m, "trainer_step": trainer_m,
                    "data_batch": data_s, "loss_preparation": prepare_s},
        "rounds": {"bare_forward_backward": bare_s, "bare_with_adamw": bare_opt_s, "trainer_step": trainer_s},
        "overhead_vs_bare": ratio - 1,
        "overhead_vs_bare_with_adamw": ratio_opt - 1,
        "overhead_per_round": [t / b - 1 for t, b in zip(trainer_s, bare_s)],
        "wall_seconds": time.perf_counter() - began,
    }
    path_json = write("train_overhead", report, args.out)
    rows = [
        ["bare forward + backward (the limit)", bare_m * 1e3, 1.0],
        ["bare forward + backward + AdamW", bare_opt_m * 1e3, statistics.median(
            o / b for o, b in zip(bare_opt_s, bare_s))],
        ["`semflow train` step", trainer_m * 1e3, ratio],
        ["  of which: a batch from the loader", data_s * 1e3, data_s / bare_m],
        ["  of which: codec, pseudo-mask, perturbation, path", prepare_s * 1e3, prepare_s / bare_m],
    ]
    print(markdown([f"pixel space, {args.size}x{args.size}, batch {args.batch_size}", "CPU ms", "x bare"], rows))
    print(f"\noverhead of a training step over the bare forward+backward: {report['overhead_vs_bare']:+.1%} "
          f"(over forward+backward+AdamW: {report['overhead_vs_bare_with_adamw']:+.1%}); wrote {path_json}")


if __name__ == "__main__":
    main()

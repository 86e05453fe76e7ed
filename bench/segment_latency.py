"""Segmentation latency and throughput against the bare codec + N network evaluations, and the speed flags.

``SemFlowPipeline.segment(images, steps=N)`` does more than its network: it resizes, encodes, runs the Euler
loop, decodes and classifies each pixel by the nearest palette colour. Its limit is ``E(x)``, ``N`` calls of
the network and ``D(z)``. This program times both, one call each in turn, at ``N = 1`` and ``N = 25`` for a
single image (latency) and a batch (throughput). The overhead is the pipeline's own work (``segment`` with a
network that costs nothing, less the codec) over the limit: on a shared machine the two totals scatter by
+-10% from call to call, more than the difference sought, so their paired ratio is shown only as a check. Then the ``--dtype bf16`` (autocast), ``--channels-last`` and
``--compile`` options of ``semflow segment`` against float32 on the batch (at ``N = 5``: bf16 is slow on this
CPU), each applied the way the command applies it (:func:`semflow.speed.speed_up`), the compile
time apart.

The model is the demo's (pixel space, 32x32, UNet 16-32-64) with random weights: time does not depend on them.

Example::

    nice -n 19 python bench/segment_latency.py

Times are CPU seconds of this process on one torch thread (``timing.py``), so images/s is per core.

Prints Markdown tables and writes ``bench/results/segment_latency.json``.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import torch

from semflow.config import demo_config
from semflow.speed import speed_up
from semflow.data import open_dataset
from semflow.models.semflow import SemFlowPipeline
from semflow.flow.velocity import network_timestep

from timing import add_threads_arg, interleaved, interleaved_samples, markdown, paired_ratio, seconds, write


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=32, help="image side in pixels (the demo's 32)")
    parser.add_argument("--batch-size", type=int, default=16, help="the throughput batch")
    parser.add_argument("--rounds", type=int, default=8, help="alternating rounds at N = 25 (x8 at N = 1)")
    parser.add_argument("--flag-steps", type=int, default=5,
                        help="N for the speed flags (bf16 autocast is slow on CPUs without AMX: keep it small)")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile (it compiles for a while)")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default bench/results/segment_latency.json)")
    add_threads_arg(parser)
    return parser.parse_args(argv)


def bare(pipe: SemFlowPipeline, x: torch.Tensor, steps: int) -> torch.Tensor:
    """The limit: ``E(x)``, ``steps`` network calls on a fixed ``z``, ``D(z)``."""
    with torch.no_grad():
        z = pipe.codec.encode_image(x)
        t = network_timestep(torch.zeros(x.shape[0]))
        for _ in range(steps):
            pipe.network(z, t)
        return pipe.codec.decode(z)


class Passthrough(torch.nn.Module):
    """A network that costs nothing: ``v(z, t) = z`` (one parameter, so the pipeline can read its dtype)."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))

    def forward(self, z: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        return z


def own_work(pipe: SemFlowPipeline, x: torch.Tensor, steps: int, rounds: int) -> float:
    """CPU seconds the pipeline spends beyond the codec and the network: ``segment`` with a network that costs
    nothing, less the codec's encode + decode. Small and fast, so many calls pin it down where the difference
    of two noisy totals cannot."""
    network = pipe.velocity.network
    pipe.velocity.network = Passthrough()  # the velocity's call, with nothing behind it
    try:
        def codec() -> None:
            with torch.no_grad():
                pipe.codec.decode(pipe.codec.encode_image(x))

        t = interleaved({"segment": lambda: pipe.segment(x, steps=steps), "codec": codec}, rounds=rounds, repeat=5)
    finally:
        pipe.velocity.network = network
    return t["segment"] - t["codec"]


def flag_args(**overrides: object) -> SimpleNamespace:
    """The command's options with everything off (contiguous float32, not compiled) but ``overrides``."""
    return SimpleNamespace(**{"dtype": "fp32", "channels_last": False, "compile": False, **overrides})


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    began = time.perf_counter()
    config = demo_config(args.size, seed=0)
    pipe = SemFlowPipeline.from_config(config.model, open_dataset(config.train.data, "train").info).eval()
    torch.manual_seed(0)
    results: dict = {"overhead": [], "flags": {}}
    rows = []
    for batch in (1, args.batch_size):
        x = torch.rand(batch, 3, args.size, args.size)
        for steps in (1, 25):
            # One call each in turn; the overhead is the median ratio of calls made next to each other.
            t = interleaved_samples({"pipeline": lambda: pipe.segment(x, steps=steps),
                                     "bare": lambda: bare(pipe, x, steps)},
                                    rounds=args.rounds * (8 if steps == 1 else 1))
            ratio, low, high = paired_ratio(t["pipeline"], t["bare"])
            p_s, b_s = statistics.median(t["pipeline"]), statistics.median(t["bare"])
            own = own_work(pipe, x, steps, rounds=40)
            entry = {"batch": batch, "steps": steps, "pipeline_s": p_s, "bare_s": b_s, "own_work_s": own,
                     "overhead": own / b_s, "paired_ratio_minus_1": ratio - 1,
                     "paired_interquartile": [low - 1, high - 1], "images_per_s": batch / p_s,
                     "calls": len(t["bare"])}
            results["overhead"].append(entry)
            rows.append([batch, steps, p_s * 1e3, b_s * 1e3, own * 1e3, f"{own / b_s:+.1%}",
                         f"{ratio - 1:+.1%} ({low - 1:+.1%} .. {high - 1:+.1%})", entry["images_per_s"]])
    print(markdown(["batch", "N", "segment (CPU ms)", "codec + N network calls (CPU ms)", "pipeline's own work (ms)",
                    "overhead", "segment / bare, paired calls (interquartile)", "images/s"], rows))

    # Speed flags on the batch, each on its own copy of the model, against float32.
    x = torch.rand(args.batch_size, 3, args.size, args.size)
    variants = {"fp32": flag_args(), "channels-last": flag_args(channels_last=True),  # segment's default on CPUs
                "bf16 autocast": flag_args(dtype="bf16")}
    if not args.no_compile:
        variants["compile"] = flag_args(compile=True)
    runners, compile_s = {}, None
    with tempfile.TemporaryDirectory() as cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache  # a cold compile, as a user's first run has
        for name, flags in variants.items():
            model = copy.deepcopy(pipe)
            context = speed_up(model, dtype=flags.dtype, channels_last=flags.channels_last, compile=flags.compile)

            def run(model: SemFlowPipeline = model, context=context) -> None:
                with context:
                    model.segment(x, steps=args.flag_steps)

            if flags.compile:
                compile_s = seconds(run, 1)[0]  # the first call compiles (wall clock: compilers run as subprocesses)
            runners[name] = run
        # bf16 is slow here: two rounds of its own against float32; the others take turns for longer.
        slow = interleaved({"fp32": runners["fp32"], "bf16 autocast": runners.pop("bf16 autocast")}, rounds=2)
        t = interleaved(runners, rounds=args.rounds)
    speedup = {name: t["fp32"] / t[name] for name in t} | {"bf16 autocast": slow["fp32"] / slow["bf16 autocast"]}
    t["bf16 autocast"] = slow["bf16 autocast"]
    rows = [[name, t[name] * 1e3, args.batch_size / t[name], speedup[name]] for name in speedup]
    results["flags"] = {name: {"seconds": t[name], "speedup_vs_fp32": speedup[name]} for name in speedup}
    results["compile_seconds"] = compile_s
    results["flag_steps"] = args.flag_steps
    print()
    print(markdown([f"N = {args.flag_steps}, batch {args.batch_size}", "CPU ms", "images/s", "speed-up vs fp32"], rows))
    if compile_s is not None:
        print(f"(torch.compile: first call, compiling included, {compile_s:.1f} s)")
    results["model"] = {"size": args.size, "codec": "pixel", "network_args": config.model.network_args}
    results["wall_seconds"] = time.perf_counter() - began
    print(f"\nwrote {write('segment_latency', results, args.out)}")


if __name__ == "__main__":
    main()

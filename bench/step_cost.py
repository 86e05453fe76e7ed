"""Seconds per training step of each synthesizer of ``bench paper``, as a ratio to SemFlow's, in one run.

Each method (SemFlow ``recommended`` and ``paper``, the rivals ``noise-flow`` and ``spade``) is set up by the
training loop itself (:func:`semflow.training.loop.setup`: the model, Accelerate, the optimiser with the method's
parameter groups) with bench paper's configuration (:func:`semflow.experiments.paper.run_config`), and
:func:`semflow.training.loop.train_step` (the loss, backward, clipping, the optimiser and schedule step) is timed on
one fixed batch, the methods taking turns in rounds (``timing.interleaved_samples``, this process's CPU time on
one thread), so that a neighbour's load slows all alike. SemFlow ``recommended`` spends the last 30% of its steps
in a self-aligned phase (its own solves first): its cost per step is the mix of both phases' medians, weighted as
a run spends them. Data loading is left out (the same for every method).

Example::

    nice -n 5 python bench/step_cost.py --data camvid:../shared/data/camvid
    nice -n 5 python bench/step_cost.py --size 96 128 --codec-path ../shared/weights/taef2 \
        --set train.cache_latents=true --out bench/results/step_cost_taef2.json      # README's settings

Prints a Markdown table and writes ``bench/results/step_cost.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import torch

from semflow.experiments.paper import MODELS, SYNTHESIS, PaperOptions, run_config
from semflow.training.loop import setup, train_step

from timing import add_threads_arg, interleaved_samples, machine, markdown, write

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="camvid:../shared/data/camvid", help="data set SPEC (bench paper's CamVid)")
    parser.add_argument("--size", type=int, nargs=2, default=[48, 64], help="model size (bench paper's 48 64)")
    parser.add_argument("--batch-size", type=int, default=8, help="batch size (bench paper's 8)")
    parser.add_argument("--lr", type=float, default=1e-3, help="learning rate (bench paper's 1e-3)")
    parser.add_argument("--train-steps", type=int, default=2000,
                        help="the run's length, which places SemFlow recommended's self-aligned phase (README: 2000)")
    parser.add_argument("--codec-path", help="a latent codec's local weights, as bench paper's --codec-path")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="any config value for all models, as bench paper's --set")
    parser.add_argument("--rounds", type=int, default=10, help="rounds of one step per method (default 10)")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default bench/results/step_cost.json)")
    add_threads_arg(parser)
    return parser.parse_args(argv)


def config_of(args: argparse.Namespace, name: str):
    """bench paper's training configuration of model ``name`` (its own code), without checkpoints or data cache."""
    options = PaperOptions(data=args.data, size=list(args.size), train_steps=args.train_steps,
                           batch_size=args.batch_size, lr=args.lr, codec_path=args.codec_path,
                           overrides=[*args.overrides, "train.checkpoint_every=0", "train.cache=false"])
    return run_config(options, name)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    load_before = machine()["load_average_1min"]
    cases, weights, params, runs = {}, {}, {}, []
    with tempfile.TemporaryDirectory() as tmp:
        for name in SYNTHESIS:
            run = setup(config_of(args, name), Path(tmp) / name)
            runs.append(run)
            batch = next(iter(run.loader))
            params[name] = run.model.parameter_counts()
            aligned = run.config.model.objective.self_align_fraction
            phases = {name: (0, 1 - aligned)}
            if aligned:  # the self-aligned phase: the loop's train_step decides it from the step reached
                phases[f"{name} (self-aligned phase)"] = (args.train_steps - 1, aligned)
            for case, (step, weight) in phases.items():
                def one_step(run=run, batch=batch, step=step):
                    run.progress.step = step
                    train_step(run, batch)
                cases[case], weights[case] = one_step, (name, weight)
        samples = interleaved_samples(cases, args.rounds)
        for run in runs:
            run.release()
    medians = {case: statistics.median(times) for case, times in samples.items()}
    per_step = {name: 0.0 for name in SYNTHESIS}
    for case, (name, weight) in weights.items():
        per_step[name] += weight * medians[case]
    reference = per_step["semflow"]
    rows = [[name, MODELS[name][1] or "-", json.dumps(params[name]).replace('"', ""), per_step[name],
             per_step[name] / reference] for name in SYNTHESIS]
    print(markdown(["model", "preset", "parameters", "CPU s / step", "ratio to SemFlow (recommended)"], rows))
    load_after = machine()["load_average_1min"]
    space = f"{runs[0].config.model.codec} space"
    print(f"{args.rounds} interleaved rounds, {args.threads} torch thread(s), {args.data} at "
          f"{args.size[0]}x{args.size[1]} in {space}, batch {args.batch_size}; "
          f"load average (1 min) {load_before} before, "
          f"{load_after} after, on {machine()['cpu_count']} CPUs")
    path = write("step_cost", {
        "settings": {k: v for k, v in vars(args).items() if k != "out"} | {"out": str(args.out)},
        "seconds_per_step": per_step, "ratio_to_semflow": {n: v / reference for n, v in per_step.items()},
        "phase_medians": medians, "parameters": params, "load_average_1min": [load_before, load_after],
    }, args.out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Exact latent caching (``train.cache_latents``): training steps with and without it, for a latent codec.

Without the cache every step reads, resizes and encodes its images; with it, each image's posterior is
computed once (:class:`semflow.training.latents.PosteriorCache`) and a step only draws ``mean + std * eps``. This
program trains the same model twice per round -- plain and cached, both with ``train.augment=none`` (the cache
needs inputs that do not change) -- for ``--rounds`` alternating rounds, and reports the seconds per step of each
(from ``loss.csv`` between step 10 and the last, set-up excluded), the time to build the cache, and how far
the two runs' final weights are apart (0 up to rounding: the cache is exact).

The codec defaults to TAEF2 with the released weights in ``../shared/weights/taef2``; data are the built-in
shapes at 64x64 (latents 32x8x8); the network is the demo's UNet 16-32-64.

Only the image side can be cached: the mask latent ``z1 = E(pseudo-mask + U(-beta, beta))`` is encoded afresh
every step, since its perturbation is drawn anew and a latent codec is not linear. So the cache saves the
loading and encoding of the images, not the encoding of the masks.

Example::

    nice -n 19 python bench/latent_cache.py --codec taef2 --codec-path ../shared/weights/taef2

Prints a Markdown table and writes ``bench/results/latent_cache.json``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from semflow.training import train
from semflow.config import load_run_config
from semflow.data import open_dataset
from semflow.training.latents import PosteriorCache
from semflow.models.semflow import SemFlowPipeline

from timing import add_threads_arg, markdown, write

REPO = Path(__file__).resolve().parents[1]
WEIGHTS = "network/diffusion_pytorch_model.safetensors"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--codec", default="taef2", help="a latent codec kind")
    parser.add_argument("--codec-path", type=Path, default=REPO.parent / "shared" / "weights" / "taef2",
                        help="local weights of the codec")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--images", type=int, default=64, help="training images (each cached once)")
    parser.add_argument("--batch-size", type=int, default=8, help="batch size")
    parser.add_argument("--steps", type=int, default=20, help="steps per run (the first 10 are left out)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of plain and cached runs")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default bench/results/latent_cache.json)")
    add_threads_arg(parser)
    return parser.parse_args(argv)


def run(args: argparse.Namespace, cached: bool, out: Path) -> float:
    """Train once; seconds per step between step 10 and the last, from ``loss.csv``."""
    config = load_run_config(None, [
        f"train.data=shapes:size={args.size},length={args.images}", f"train.steps={args.steps}",
        f"train.batch_size={args.batch_size}", "train.log_every=10", "train.checkpoint_every=0",
        "train.augment=none", f"train.cache_latents={str(cached).lower()}", f"model.size=[{args.size},{args.size}]",
        f"model.codec={args.codec}", f"model.codec_args={{path: '{args.codec_path}'}}",
        "model.network_args={block_out_channels: [16, 32, 64]}", "model.palette.kind=spread",
    ])
    train(config, out, progress_bar=False)
    rows = [r.split(",") for r in (out / "loss.csv").read_text().splitlines()[1:]]
    return (float(rows[-1][3]) - float(rows[0][3])) / (int(rows[-1][0]) - int(rows[0][0]))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if not args.codec_path.exists():
        raise SystemExit(f"{args.codec_path} is absent: pass --codec-path with the {args.codec} weights")
    began = time.perf_counter()
    plain_s, cached_s = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            plain_s.append(run(args, False, Path(tmp) / f"plain{r}"))
            cached_s.append(run(args, True, Path(tmp) / f"cached{r}"))
        plain, cached = load_file(str(Path(tmp) / "plain0" / WEIGHTS)), load_file(str(Path(tmp) / "cached0" / WEIGHTS))
        max_diff = max(float((plain[k] - cached[k]).abs().max()) for k in plain)
        max_weight = max(float(plain[k].abs().max()) for k in plain)
        pipe = SemFlowPipeline.from_pretrained(Path(tmp) / "plain0")
    dataset = open_dataset(f"shapes:size={args.size},length={args.images}", "train")
    start = time.perf_counter()
    cache = PosteriorCache.build(pipe.codec, dataset, pipe.size, flips=False, batch_size=args.batch_size)
    build_s = time.perf_counter() - start
    p, c = statistics.median(plain_s), statistics.median(cached_s)
    report = {
        "codec": args.codec, "size": args.size, "latent_shape": list(pipe.latent_shape), "images": args.images,
        "batch_size": args.batch_size,
        "seconds_per_step": {"plain": p, "cached": c}, "rounds": {"plain": plain_s, "cached": cached_s},
        "speedup": p / c, "cache_build_seconds": build_s, "cache_mib": cache.nbytes / 2**20,
        "break_even_steps": build_s / max(p - c, 1e-9),
        "max_abs_weight_difference_after_training": max_diff, "max_abs_weight": max_weight,
        "steps": args.steps, "wall_seconds": time.perf_counter() - began,
    }
    rows = [["encode every step", p * 1e3, 1.0], ["cached posteriors (exact)", c * 1e3, p / c]]
    print(markdown([f"{args.codec}, {args.size}x{args.size} -> latents {'x'.join(map(str, pipe.latent_shape))}, "
                    f"batch {args.batch_size}", "ms / step", "speed-up"], rows))
    print(f"\ncache of {args.images} images: built in {build_s:.1f} s ({cache.nbytes / 2**20:.1f} MiB), repaid after "
          f"{report['break_even_steps']:.0f} steps; after {args.steps} steps the weights differ by at most {max_diff:.2e} "
          f"(largest weight {max_weight:.2f})")
    print(f"wrote {write('latent_cache', report, args.out)}")


if __name__ == "__main__":
    main()

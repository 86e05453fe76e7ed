"""``semflow train``: train a model on a data set and write a loadable model folder."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from semflow.cli.common import non_negative_int, positive_int, seed_int
from semflow.config import AUGMENTATIONS, DEFAULT_PRESET, METHODS, PALETTES, PRESETS, latent_part


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train a SemFlow model (or a baseline: --method)", description=__doc__)
    p.add_argument("--data", help="data set SPEC: shapes (built-in), or KIND:PATH (default: shapes)")
    p.add_argument("--out", required=True, type=Path, help="output folder for the model, loss.csv and checkpoints")
    p.add_argument("--method", metavar="|".join(METHODS),
                   help="semflow (default); a segmentation baseline on the same backbone: dsm (conditional diffusion "
                        "segmenter) or discriminative (per-pixel cross-entropy); or a synthesis rival: noise-flow "
                        "(mask-conditioned rectified flow from noise) or spade (SPADE GAN)")
    p.add_argument("--preset", default=DEFAULT_PRESET, metavar="|".join(PRESETS),
                   help=f"the recipe to start from (default {DEFAULT_PRESET}: the best measured; paper: the authors' "
                        "recipe exactly); --config and --set override it (docs/quality.md)")
    p.add_argument("--config", type=Path, help="YAML/JSON file with 'model' and 'train' sections")
    p.add_argument("--steps", type=positive_int, help="optimiser steps")
    p.add_argument("--size", type=positive_int, nargs=2, metavar=("H", "W"), help="training size in pixels")
    p.add_argument("--batch-size", type=positive_int, help="batch size per process")
    p.add_argument("--lr", type=float, help="peak learning rate (AdamW)")
    p.add_argument("--seed", type=seed_int, help="random seed (data order, augmentation, noise, init)")
    p.add_argument("--codec", help="codec kind: pixel, or a latent codec (default: the kind the --codec-path "
                                   "weights hold, else pixel)")
    p.add_argument("--codec-path", help="local path of a latent codec's weights (its kind is read off the files)")
    p.add_argument("--palette", choices=list(PALETTES),
                   help="authors' palette (k, s) or spread over the colour cube (the recommended preset's)")
    p.add_argument("--k", type=int, help="palette base k (authors' palette; paper: 6)")
    p.add_argument("--s", type=int, help="palette step s in pixel levels (authors' palette; paper: 50)")
    p.add_argument("--beta", type=float, help="perturbation amplitude in pixel levels, 0 < beta < s/2")
    p.add_argument("--num-workers", type=non_negative_int, help="data loader worker processes")
    p.add_argument("--mixed-precision", choices=["no", "bf16", "fp16"], help="autocast precision")
    p.add_argument("--gradient-accumulation-steps", type=positive_int,
                   help="micro-batches per optimiser step (effective batch = processes x batch size x this)")
    p.add_argument("--scale-lr", action="store_true",
                   help="multiply --lr by processes x accumulation steps (linear scaling; logged)")
    p.add_argument("--augment", choices=list(AUGMENTATIONS),
                   help="training augmentation (default scale-crop-flip, or flip with --cache-latents, which needs flip or none)")
    p.add_argument("--cache-latents", action="store_true",
                   help="encode each training image once and sample its cached posterior every step (exact)")
    p.add_argument("--max-minutes", type=float, help="stop (and save) after this many minutes")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="any config value, e.g. --set train.warmup_steps=50 --set model.network_args.layers_per_block=2")
    p.add_argument("--skip-bad", action="store_true",
                   help="leave out bad image/mask pairs (counted, listed in OUT/bad_files.tsv) instead of stopping")
    p.add_argument("--resume", metavar="latest|PATH",
                   help="continue from the newest checkpoint in --out (latest) or from a checkpoint folder")
    p.add_argument("--overwrite", action="store_true",
                   help="start a fresh run in an --out that holds another run's checkpoints or model (deletes them)")
    p.add_argument("--ema-decay", type=float, help="keep and export an EMA of the weights (e.g. 0.999)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def overrides_from_args(args: argparse.Namespace) -> list[str]:
    """The explicit flags as ``section.key=value`` overrides (applied after --config, before --set)."""
    flags = {
        "train.data": args.data, "train.steps": args.steps, "train.batch_size": args.batch_size,
        "train.lr": args.lr, "train.seed": args.seed, "train.num_workers": args.num_workers,
        "train.mixed_precision": args.mixed_precision, "train.ema_decay": args.ema_decay,
        "train.skip_bad": True if args.skip_bad else None, "train.max_minutes": args.max_minutes,
        "model.size": list(args.size) if args.size else None, "model.codec": args.codec,
        "model.method": args.method,
        "model.palette.kind": args.palette, "model.palette.k": args.k, "model.palette.s": args.s,
        "model.beta": args.beta, "train.gradient_accumulation_steps": args.gradient_accumulation_steps,
        "train.scale_lr": True if args.scale_lr else None, "train.augment": args.augment,
        "train.cache_latents": True if args.cache_latents else None,
    }
    items = [f"{key}={json.dumps(value)}" for key, value in flags.items() if value is not None]
    if args.codec_path:
        items.append(f"model.codec_args.path={json.dumps(args.codec_path)}")
    return items + list(args.overrides)


def run(args: argparse.Namespace) -> int:
    from semflow.training import train
    from semflow.config import load_run_config

    from semflow.errors import SemflowInputError
    from semflow.outputs import check_output_folder

    if args.palette == "spread" and (args.k is not None or args.s is not None):
        raise SemflowInputError(f"--k/--s set the authors' palette; --palette {args.palette} chooses its own k and s "
                                "(k = ceil(C^(1/3)), s = floor(255/(k-1))), so give one or the other")
    if args.resume is not None and args.overwrite:
        raise SemflowInputError("--resume continues the run in --out and --overwrite deletes it; give one of them")
    check_output_folder(args.out)
    config = load_run_config(args.config, overrides_from_args(args), preset_name=args.preset)
    if args.codec_path and not args.codec:
        print(f"codec {config.model.codec} (read off {args.codec_path})")
    latent = latent_part(args.preset, config.model.method).get("model", {}) if config.model.codec != "pixel" else {}
    if latent:
        values = ", ".join(f"model.{key}={getattr(config.model, key)}" for key in latent)
        print(f"preset {args.preset} in {config.model.codec}'s latents: {values}")
    if config.train.cache_latents and args.augment is None and config.train.augment == "flip":
        print("--cache-latents: augmentation flip (the cache holds both orientations of each image; the default "
              "scale-crop-flip draws new crops, which a cache cannot hold)")
    _, result = train(config, args.out, progress_bar=not args.no_progress, resume=args.resume,
                      overwrite=args.overwrite)
    if result.process_index != 0:  # under a launcher, process 0 speaks for all
        return 130 if result.interrupted else 0
    if result.interrupted:
        print(f"interrupted at step {result.steps}: checkpoint and model written to {args.out}; "
              "continue with --resume latest")
        return 130
    if result.trained_steps == 0:
        print(f"nothing to train: the run in {args.out} already reached step {result.steps} (train.steps="
              f"{config.train.steps}); its model is unchanged (final loss {result.final_loss:.4f}). Give --steps above "
              f"{result.steps} to train further")
        return 0
    print(f"trained {result.steps} steps in {result.seconds:.0f} s (final loss {result.final_loss:.4f}); "
          f"model written to {args.out}")
    return 0

"""``semflow import-authors``: the SemFlow authors' released UNet as a semflow model folder.

The folder reproduces the authors' inference: Stable Diffusion 1.5's VAE as the codec, their fine-tuned
``UNet2DConditionModel`` (SD1.5's UNet config) driven by the empty prompt's text embedding, the palette
k=6, s=50, their perturbation amplitude (0.1 * U(-0.5, 0.5) in [-1, 1] units, i.e. beta = 6.375 pixel
levels), the data set's classes, 512x512 and the network timestep 1000*t. Euler with N steps evaluates the
network at the authors' timesteps whenever N divides 1000 (their default 25 included; up to float32 rounding
of 1000*k/N); see docs/backbones.md for the details. Everything is read from local files; nothing is downloaded.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from semflow.cli.common import positive_int
from semflow.pseudomask.perturbation import AUTHORS_BETA

# The authors' data sets this command knows the classes of (module.data.celeb in their release).
DATASETS = ("celebamask",)
AUTHORS_PALETTE = (6, 50)
AUTHORS_SIZE = (512, 512)
WEIGHT_SUFFIXES = (".bin", ".safetensors")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "import-authors", help="make a model folder from the SemFlow authors' released UNet", description=__doc__
    )
    p.add_argument("--unet", required=True, type=Path,
                   help="the authors' diffusion_pytorch_model.bin (or .safetensors), or the folder holding it")
    p.add_argument("--sd", required=True, type=Path,
                   help="local Stable Diffusion 1.5 folder: vae/ (the codec), unet/config.json (the UNet's config when "
                        "none is beside --unet), text_encoder/ and tokenizer/ (the null embedding; needs transformers)")
    p.add_argument("--null-embedding", type=Path, metavar="FILE",
                   help="a saved empty-prompt embedding (1, 77, 768) to use instead of computing it from --sd")
    p.add_argument("--dataset", choices=DATASETS, default="celebamask", help="the data set the UNet was trained on")
    p.add_argument("--size", type=positive_int, nargs=2, metavar=("H", "W"), default=list(AUTHORS_SIZE),
                   help="model size in pixels (the authors': 512 512)")
    p.add_argument("--out", required=True, type=Path, help="model folder to write")
    p.set_defaults(func=run)


def authors_weights(unet: Path, sd: Path) -> tuple[Path, Path | None]:
    """``(weights, config)`` for the released UNet: a folder with ``config.json`` stands alone (config
    ``None``); a bare weights file (or a folder holding only one) takes ``config.json`` beside it, else SD1.5's
    ``unet/config.json``."""
    from semflow.errors import SemflowInputError

    unet = unet.expanduser()
    if unet.is_dir():
        if (unet / "config.json").is_file():
            return unet, None
        files = sorted(p for p in unet.iterdir() if p.suffix in WEIGHT_SUFFIXES and p.is_file())
        if len(files) != 1:
            raise SemflowInputError(
                f"--unet {unet}: expected one diffusion_pytorch_model.bin (or .safetensors) there, found {len(files)}"
            )
        unet = files[0]
    elif not unet.is_file():
        raise SemflowInputError(f"--unet {unet} does not exist; expected the authors' diffusion_pytorch_model.bin")
    beside = unet.parent / "config.json"
    return unet, None if beside.is_file() else sd.expanduser() / "unet" / "config.json"


def run(args: argparse.Namespace) -> int:
    from semflow.config import ModelConfig, PaletteConfig
    from semflow.data.celebamask import INFO as CELEBAMASK
    from semflow.models.semflow import SemFlowPipeline

    from semflow.outputs import check_output_folder

    check_output_folder(args.out)
    weights, unet_config = authors_weights(args.unet, args.sd)
    network_args: dict[str, str] = {"pretrained": str(weights.resolve())}
    if unet_config is not None:
        network_args["unet_config"] = str(unet_config.resolve())
    if args.null_embedding is not None:
        network_args["null_embedding"] = str(args.null_embedding.expanduser().resolve())
    else:
        network_args["sd"] = str(args.sd.expanduser().resolve())
    config = ModelConfig(
        size=list(args.size),
        codec="autoencoder-kl",
        codec_args={"path": str(args.sd.expanduser().resolve())},
        network="unet2d-condition",
        network_args=network_args,
        palette=PaletteConfig(kind="authors", k=AUTHORS_PALETTE[0], s=AUTHORS_PALETTE[1]),
        beta=AUTHORS_BETA,
        time_scale=1000.0,
    )
    dataset = {"celebamask": CELEBAMASK}[args.dataset]
    pipe = SemFlowPipeline.from_config(config, dataset)
    pipe.save_pretrained(args.out)
    print(f"wrote {args.out}: the authors' {args.dataset} model ({dataset.num_classes} classes, "
          f"{config.size[0]}x{config.size[1]}, beta {AUTHORS_BETA} levels)")
    return 0

"""The codec ceiling: how much of a segmentation survives the codec alone, before any flow is trained.

SemFlow segments by carrying ``z0 = E(image)`` to ``z1 = E(pseudo-mask)`` and decoding ``D(z1)`` back to
classes by the nearest palette colour. Even a perfect flow can do no better than the round trip
``labels -> pseudo-mask -> E -> D -> nearest palette colour``, so its mIoU bounds latent-space segmentation.
This program measures it on CamVid's test split, together with the image reconstruction PSNR, for two
palettes: the authors' (k=6, s=50) and one spread over the whole colour cube (``Palette.spread``).

Protocol: images are resized to the model size with antialiased bilinear filtering and labels with nearest
neighbour (as the training inputs are); masks are encoded by the posterior mode; decoded masks are not
clamped before the nearest-colour decision; mIoU comes from one confusion matrix accumulated over the split,
the ignore label (11) excluded, scored at the model size (the bound on what the flow can carry) and, with the
predictions upsampled by nearest neighbour, at the labels' original size (as ``semflow evaluate`` scores);
PSNR is the mean over images of ``10 log10(1 / MSE)`` with
the decoded image clamped to ``[0, 1]`` (as it would be saved).

Example::

    python bench/codec_ceiling.py --codec taef2 --codec-path ../shared/weights/taef2 \\
        --camvid ../shared/data/camvid --sizes 128x96,160x120

Prints a Markdown table and writes ``bench/results/codec_ceiling.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from semflow.codecs import Codec, build_codec
from semflow.data.transforms import resize_image, resize_label
from semflow.io import read_image, read_label, write_bytes
from semflow.evaluation.metrics import ConfusionMatrix
from semflow.pseudomask.palette import Palette

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
# CamVid (SegNet 11-class version); 11 = Unlabelled is the ignore label.
CAMVID_CLASSES = (
    "Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car", "Pedestrian", "Bicyclist",
)
CAMVID_IGNORE = 11


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--codec", default="taef2", help="codec kind (taef2, taesd, autoencoder-kl, ...)")
    parser.add_argument("--codec-path", type=Path, default=SHARED / "weights" / "taef2",
                        help="local weights of the codec (ignored for pixel)")
    parser.add_argument("--camvid", type=Path, default=SHARED / "data" / "camvid",
                        help="CamVid folder in the SegNet layout (test.txt, test/, testannot/)")
    parser.add_argument("--split", default="test", help="split list to read: SPLIT.txt")
    parser.add_argument("--sizes", default="128x96,160x120", help="comma-separated model sizes WIDTHxHEIGHT")
    parser.add_argument("--batch-size", type=int, default=8, help="images per encode/decode call")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N pairs (quick runs)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--device", default="cpu", help="torch device to run the codec on")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "codec_ceiling.json",
                        help="where to write the JSON results")
    return parser.parse_args(argv)


def parse_size(text: str) -> tuple[int, int]:
    """``"128x96"`` (width x height) -> ``(96, 128)`` as ``(h, w)``."""
    width, _, height = text.lower().partition("x")
    return int(height), int(width)


def read_split(root: Path, split: str, limit: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """All pairs of a split: images uint8 ``(N, 3, H, W)``, labels int64 ``(N, H, W)`` (original size)."""
    pairs = [line.split() for line in (root / f"{split}.txt").read_text().splitlines() if line.strip()][:limit]
    images = torch.stack([read_image(root / image) for image, _ in pairs])
    labels = torch.stack([read_label(root / label) for _, label in pairs])
    return images, labels


@torch.no_grad()
def measure(codec: Codec, images: torch.Tensor, labels: torch.Tensor, size: tuple[int, int], palettes: dict[str, Palette],
            batch_size: int, device: str) -> dict[str, Any]:
    """Image PSNR and mask-ceiling scores of ``codec`` at ``size = (h, w)`` over all pairs."""
    psnr: list[float] = []
    matrices = {name: ConfusionMatrix(len(CAMVID_CLASSES), CAMVID_IGNORE) for name in palettes}
    at_original = {name: ConfusionMatrix(len(CAMVID_CLASSES), CAMVID_IGNORE) for name in palettes}
    for start in range(0, len(images), batch_size):
        x = resize_image(images[start : start + batch_size].float() / 255.0, size).to(device)
        original = labels[start : start + batch_size]
        y = resize_label(original, size)
        decoded = codec.decode(codec.encode_image(x)).clamp(0, 1)
        mse = ((decoded - x) ** 2).flatten(1).mean(1)
        psnr += (10 * torch.log10(1.0 / mse)).tolist()
        for name, palette in palettes.items():
            masks = (palette.encode(y) / 255.0).to(device)
            predicted = palette.decode(codec.decode(codec.encode_mask(masks)) * 255.0).cpu()
            matrices[name].update(predicted, y)
            at_original[name].update(resize_label(predicted, tuple(original.shape[-2:])), original)
    result: dict[str, Any] = {"image_psnr_db": sum(psnr) / len(psnr), "image_psnr_db_min": min(psnr), "palettes": {}}
    for name, matrix in matrices.items():
        scores, original_scores = matrix.scores(), at_original[name].scores()
        result["palettes"][name] = {
            "miou": scores.miou,
            "pixel_accuracy": scores.pixel_accuracy,
            "per_class_iou": dict(zip(CAMVID_CLASSES, scores.per_class_iou)),
            "miou_at_original_size": original_scores.miou,
            "pixel_accuracy_at_original_size": original_scores.pixel_accuracy,
        }
    return result


def markdown(results: list[dict[str, Any]], palettes: dict[str, Palette]) -> str:
    """The summary table, then per-class IoU at every size and palette."""
    names = list(palettes)
    lines = [
        "| size (W x H) | image PSNR (dB) | "
        + " | ".join(f"mask mIoU, {n} palette" for n in names)
        + " | "
        + " | ".join(f"same, scored at original size, {n}" for n in names)
        + " |",
        "|---|---|" + "---|" * 2 * len(names),
    ]
    for r in results:
        mious = " | ".join(f"{r['palettes'][n]['miou']:.3f}" for n in names)
        original = " | ".join(f"{r['palettes'][n]['miou_at_original_size']:.3f}" for n in names)
        lines.append(f"| {r['size']} | {r['image_psnr_db']:.2f} | {mious} | {original} |")
    lines += ["", "| size, palette | " + " | ".join(CAMVID_CLASSES) + " |", "|---|" + "---|" * len(CAMVID_CLASSES)]
    for r in results:
        for n in names:
            ious = r["palettes"][n]["per_class_iou"].values()
            lines.append(f"| {r['size']}, {n} | " + " | ".join("-" if v is None else f"{v:.2f}" for v in ious) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    started = time.time()
    codec = build_codec(args.codec, None if args.codec == "pixel" else args.codec_path).to(args.device)
    images, labels = read_split(args.camvid, args.split, args.limit)
    authors = Palette(len(CAMVID_CLASSES), k=6, s=50, ignore_index=CAMVID_IGNORE)
    spread = Palette.spread(len(CAMVID_CLASSES), ignore_index=CAMVID_IGNORE)
    palettes = {f"authors' (k={authors.k}, s={authors.s})": authors, f"spread (k={spread.k}, s={spread.s})": spread}
    results = []
    for text in args.sizes.split(","):
        size = parse_size(text)
        codec.latent_shape(*size)  # fails early on sizes that are not multiples of the codec's factor
        result = measure(codec, images, labels, size, palettes, args.batch_size, args.device)
        results.append({"size": f"{size[1]}x{size[0]}", **result})
        print(f"{text}: done ({time.time() - started:.0f} s)", flush=True)
    report = {
        "codec": args.codec,
        "codec_config": codec.get_config(),
        "dataset": f"camvid {args.split}",
        "pairs": len(images),
        "protocol": "labels resized to the model size (nearest); masks by posterior mode, decoded unclamped to the "
        "nearest palette colour; mIoU from the split's summed confusion matrix, ignore 11 excluded, at the model size "
        "and (predictions upsampled by nearest neighbour) at the labels' original size; image PSNR is the "
        "mean over images with the decoded image clamped to [0, 1]",
        "results": results,
        "seconds": round(time.time() - started, 1),
        "device": args.device,
        "threads": torch.get_num_threads(),
    }
    write_bytes((json.dumps(report, indent=2) + "\n").encode(), args.out)
    print(markdown(results, palettes))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()

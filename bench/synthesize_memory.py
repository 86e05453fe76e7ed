"""Peak memory of ``semflow synthesize`` on one large mask (issue 13: 8000x8000 with 4 samples peaked at 7 GB).

A randomly initialised demo-sized model (pixel space, 32x32, UNet 16-32-64; the network's cost is negligible
here, the point is the full-size images) synthesizes ``--samples`` images from one ``--side`` x ``--side``
class-index PNG in a child process, and the child's peak resident set size (``ru_maxrss``) is reported beside
that of a child that only imports semflow. What grows with the mask: the mask itself (1 byte a pixel), its
label check (unique values only), and one output image at a time (3 bytes a pixel, resized in uint8, plus
Pillow's PNG encoder).

Example::

    nice -n 19 python bench/synthesize_memory.py --side 8000 --samples 4

Prints a Markdown table and writes ``bench/results/synthesize_memory.json``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--side", type=int, default=8000, help="mask side in pixels (default 8000)")
    p.add_argument("--samples", type=int, default=4, help="images per mask (default 4)")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "synthesize_memory.json")
    return p.parse_args(argv)


def child_peak_mib(cmd: list[str]) -> tuple[float, float]:
    """Run ``cmd`` to completion; its peak RSS in MiB (RUSAGE_CHILDREN is the largest child so far) and seconds."""
    began = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, time.perf_counter() - began


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        build = (
            "from semflow.config import demo_config; from semflow.data import open_dataset; "
            "from semflow.models.base import Segmenter; import torch; torch.manual_seed(0); "
            "c = demo_config(32, 0); info = open_dataset(c.train.data, 'train').info; "
            f"Segmenter.from_config(c.model, info).save_pretrained({str(folder / 'model')!r})"
        )
        subprocess.run([sys.executable, "-c", build], check=True)
        rng = np.random.default_rng(0)
        blocks = rng.integers(0, 5, (args.side // 500 + 1, args.side // 500 + 1), dtype=np.uint8)
        mask = np.kron(blocks, np.ones((500, 500), np.uint8))[: args.side, : args.side]  # large class regions
        Image.fromarray(np.ascontiguousarray(mask)).save(folder / "big.png")
        baseline, _ = child_peak_mib([sys.executable, "-c", "import semflow.cli.main, torch, diffusers"])
        peak, seconds = child_peak_mib([sys.executable, "-m", "semflow", "synthesize", "--model", str(folder / "model"),
                                        "--steps", "1", "--samples", str(args.samples), str(folder / "big.png"),
                                        "--out", str(folder / "out"), "--device", "cpu"])
    row = {"side": args.side, "samples": args.samples, "baseline_mib": round(baseline), "peak_mib": round(peak),
           "above_baseline_mib": round(peak - baseline), "seconds": round(seconds, 1),
           "mask_mib": round(args.side**2 / 2**20), "one_image_mib": round(3 * args.side**2 / 2**20)}
    print("| mask | samples | peak RSS | imports only | above imports | one uint8 image | seconds |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print(f"| {args.side}x{args.side} | {args.samples} | {row['peak_mib']} MiB | {row['baseline_mib']} MiB | "
          f"{row['above_baseline_mib']} MiB | {row['one_image_mib']} MiB | {row['seconds']} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(row, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""The ESPNet release's CamVid weights as a judge: which input convention they expect, and how well they segment
CamVid's real images at several resolutions (the numbers of docs/evaluation.md, "The judge")::

    python bench/judge_calibration.py --data camvid:../shared/data/camvid \\
        --weights ../shared/weights/espnet-camvid/espnet_p_2_q_8_camvid.pth

The normalisation's mean and std are calibrated on the training images (per-image channel statistics, averaged);
the channel order and the final ``/255`` are chosen on the validation split, and the test split is reported.
Prints a Markdown table and writes ``bench/results/judge_calibration.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="camvid:PATH")
    p.add_argument("--weights", required=True, help="espnet_p_2_q_8_camvid.pth")
    p.add_argument("--sizes", default="120x160,240x320,360x480", help="resolutions the release segments at")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "judge_calibration.json")
    args = p.parse_args()

    from semflow.data import open_dataset
    from semflow.evaluation.judge import Normalization, judge_miou, release_judge
    from semflow.io import write_json

    torch.set_num_threads(args.threads)
    began = time.perf_counter()
    train, val, test = (open_dataset(args.data, split) for split in ("train", "val", "test"))
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    judge = release_judge(args.weights, train, sizes[0])
    release = judge.normalization
    variants = {
        "BGR, /255 (the release's convention)": release,
        "RGB, /255": lambda x: release(x).flip(1),
        "BGR, without /255": lambda x: 255 * release(x),
        "BGR, /255, scale x0.5": lambda x: 0.5 * release(x),
        "BGR, /255, scale x2": lambda x: 2 * release(x),
    }
    rows: dict[str, dict[str, float]] = {}
    print(f"mean (RGB, 0-255) {[round(v, 1) for v in release.mean]}, std {[round(v, 1) for v in release.std]}")
    print("| input convention | size | val mIoU (%) | test mIoU (%) |\n|---|---|---:|---:|")
    for name, normalization in variants.items():
        judge.normalization = normalization  # type: ignore[assignment]
        score = judge_miou(judge, val).miou
        rows[name] = {"size": list(sizes[0]), "val": score}
        print(f"| {name} | {sizes[0][0]}x{sizes[0][1]} | {100 * score:.1f} | |", flush=True)
    judge.normalization = release
    for size in sizes:
        judge.config = type(judge.config)(**{**judge.config.__dict__, "size": size})
        key = f"release at {size[0]}x{size[1]}"
        rows[key] = {"size": list(size), "val": judge_miou(judge, val).miou, "test": judge_miou(judge, test).miou}
        print(f"| BGR, /255 | {size[0]}x{size[1]} | {100 * rows[key]['val']:.1f} | {100 * rows[key]['test']:.1f} |",
              flush=True)
    seconds = time.perf_counter() - began
    print(f"{seconds:.0f} s, {args.threads} thread(s), load average {os.getloadavg()[0]:.1f}")
    write_json({"normalization": {"mean": release.mean, "std": release.std}, "rows": rows, "seconds": seconds,
                "command": "python bench/judge_calibration.py " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in
                                                                             vars(args).items() if k != "out")},
               args.out)


if __name__ == "__main__":
    main()

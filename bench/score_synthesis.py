"""Score the synthesis of trained SemFlow models as ``semflow bench paper`` scores its Table 1.

For each model folder: ``samples`` images per mask at ``steps`` steps from evenly spaced masks of a split, then
SIS-mIoU, FD, KID and feature diversity by the data set's judge (a judge folder, as ``semflow bench judge`` prints
it, e.g. ``runs/judges/camvid-...``), pixel diversity (mean pairwise L1 between the samples of one mask) and cycle
mIoU::

    python bench/score_synthesis.py --data camvid:../shared/data/camvid \\
        --judge runs/judges/camvid-KEY --models runs/camvid/recs1 runs/camvid/asym05 ...

Prints one Markdown row per model and writes ``bench/results/score_synthesis.json`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="data set SPEC, e.g. camvid:../shared/data/camvid")
    p.add_argument("--split", default="test")
    p.add_argument("--judge", required=True, type=Path, help="judge folder (semflow bench judge)")
    p.add_argument("--models", required=True, nargs="+", type=Path, help="SemFlow model folders")
    p.add_argument("--test-images", type=int, default=100, help="evenly spaced masks of the split (0: all)")
    p.add_argument("--samples", type=int, default=2)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "score_synthesis.json")
    args = p.parse_args()

    from semflow.evaluation.subset import evenly_spaced_indices
    from semflow.data import open_dataset
    from semflow.evaluation.judge import Judge
    from semflow.evaluation.synthesis import evaluate_synthesis
    from semflow.models.base import Segmenter

    torch.set_num_threads(args.threads)
    judge = Judge.load(args.judge).eval()
    dataset = open_dataset(args.data, args.split)
    indices = evenly_spaced_indices(len(dataset), args.test_images)
    rows = {}
    print(f"judge: {judge.name}")
    print("| model | SIS-mIoU (%) | FD | KID x1000 | diversity (pixel L1) | diversity (judge features) | cycle mIoU (%) | s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for folder in args.models:
        began = time.perf_counter()
        model = Segmenter.from_pretrained(folder).eval()
        result = evaluate_synthesis(model, dataset, judges={"judge": judge}, steps=args.steps, samples=args.samples,
                                    seed=args.seed, batch_size=16, indices=indices).to_json()
        seconds = time.perf_counter() - began
        rows[str(folder)] = {**result, "seconds": seconds}
        j = result["judged"]["judge"]
        cycle = "—" if result["cycle_miou"] is None else f"{100 * result['cycle_miou']:.1f}"
        print(f"| {folder} | {100 * j['sis_miou']:.1f} | {j['fd']:.2f} | {1000 * j['kid']:.1f} | "
              f"{result['diversity_l1']:.3f} | {j['diversity']:.3f} | {cycle} | {seconds:.0f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "models"}
    settings["judge_name"] = judge.name
    args.out.write_text(json.dumps({"settings": settings, "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

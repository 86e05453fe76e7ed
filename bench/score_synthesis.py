"""Score the synthesis of trained SemFlow models as ``semflow bench paper`` scores its Table 1.

For each model folder: ``samples`` images per mask at ``steps`` Euler steps from evenly spaced masks of a split,
then SIS-mIoU and FD-seg with an independently trained segmenter (a discriminative model folder, for example
``runs/paper/models/discriminative`` of a ``bench paper`` run), diversity (mean pairwise pixel L1 between the
samples of one mask) and cycle mIoU. The CamVid synthesis rows of docs/quality.md were made with::

    python bench/score_synthesis.py --data camvid:../shared/data/camvid \\
        --segmenter runs/paper/models/discriminative --models runs/camvid/recs1 runs/camvid/asym05 ...

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
    p.add_argument("--segmenter", required=True, type=Path, help="discriminative model folder (SIS-mIoU, FD-seg)")
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
    from semflow.evaluation.synthesis import evaluate_synthesis
    from semflow.models.semflow import SemFlowPipeline

    torch.set_num_threads(args.threads)
    segmenter = SemFlowPipeline.from_pretrained(args.segmenter).eval()
    dataset = open_dataset(args.data, args.split)
    indices = evenly_spaced_indices(len(dataset), args.test_images)
    rows = {}
    print("| model | SIS-mIoU (%) | diversity (pixel L1) | FD-seg | cycle mIoU (%) | s |")
    print("|---|---:|---:|---:|---:|---:|")
    for folder in args.models:
        began = time.perf_counter()
        model = SemFlowPipeline.from_pretrained(folder).eval()
        result = evaluate_synthesis(model, dataset, segmenter=segmenter, steps=args.steps, samples=args.samples,
                                    seed=args.seed, batch_size=16, indices=indices).to_json()
        seconds = time.perf_counter() - began
        rows[str(folder)] = {**result, "seconds": seconds}
        print(f"| {folder} | {100 * result['sis_miou']:.1f} | {result['diversity_l1']:.3f} | {result['fd_seg']:.2f} "
              f"| {100 * result['cycle_miou']:.1f} | {seconds:.0f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "models"}
    args.out.write_text(json.dumps({"settings": settings, "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

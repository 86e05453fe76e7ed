"""Score the synthesis of trained models by the data set's judge, as ``semflow bench paper`` scores its Table 1.

For each model folder (any method that synthesizes: SemFlow, noise-flow, spade): ``samples`` images per mask at
``steps`` steps from evenly spaced masks of a split, then SIS-mIoU, FD, KID and feature diversity by the judge (a
judge folder, as ``semflow bench judge`` prints it, e.g. ``runs/judges/camvid-KEY``), with ``--judge-weights`` also
SIS-mIoU by the ESPNet release as it is (an extra column), pixel diversity, cycle mIoU (models that segment),
seconds per training step (the folder's ``loss.csv``) and per sample, parameters; and a ceiling row for the real
test images. Writes the table (``--out`` .md and .json) and ``--grid`` (the real image and two samples of every
model for 4 masks)::

    python bench/score_synthesis.py --data camvid:../shared/data/camvid --judge runs/judges/camvid-KEY \\
        --models runs/paper/models/semflow runs/paper/models/noise-flow ... --out bench/results/score_synthesis.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch


def _f(value, digits: int = 3, scale: float = 1.0) -> str:
    return "—" if value is None else f"{scale * value:.{digits}f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="data set SPEC, e.g. camvid:../shared/data/camvid")
    p.add_argument("--split", default="test")
    p.add_argument("--judge", required=True, type=Path, help="judge folder (semflow bench judge)")
    p.add_argument("--judge-weights", help="ESPNet release weights: SIS-mIoU by them as they are, an extra column")
    p.add_argument("--pretrained-judge-size", type=int, nargs=2, metavar=("H", "W"),
                   help="resolution the release segments at (default the judge's)")
    p.add_argument("--models", required=True, nargs="+", type=Path, help="model folders that synthesize")
    p.add_argument("--test-images", type=int, default=100, help="evenly spaced masks of the split (0: all)")
    p.add_argument("--samples", type=int, default=2)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eta", type=float, help="synthesize SemFlow models with this model.synthesis_eta (stochastic "
                   "steps; 0: the ODE) instead of their own")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "score_synthesis.json",
                   help="JSON results; the Markdown table goes beside it (.md)")
    p.add_argument("--grid", type=Path, help="write the picture of samples here (PNG)")
    args = p.parse_args()

    from semflow.data import open_dataset
    from semflow.evaluation.judge import Judge, release_judge
    from semflow.evaluation.subset import evenly_spaced_indices
    from semflow.evaluation.synthesis import evaluate_synthesis, judge_real_images
    from semflow.evaluation.synthesis_grid import synthesis_grid
    from semflow.io import write_image, write_json, write_text
    from semflow.models.base import Segmenter
    from semflow.training.history import seconds_per_step

    torch.set_num_threads(args.threads)
    began = time.perf_counter()
    judge = Judge.load(args.judge).eval()
    dataset = open_dataset(args.data, args.split)
    judges = {"judge": judge}
    if args.judge_weights:
        size = tuple(args.pretrained_judge_size) if args.pretrained_judge_size else judge.size
        judges["pretrained"] = release_judge(args.judge_weights, open_dataset(args.data, "train"), size)
    indices = evenly_spaced_indices(len(dataset), args.test_images) or list(range(len(dataset)))
    models = {str(folder): Segmenter.from_pretrained(folder).eval() for folder in args.models}
    for model in models.values():
        if args.eta is not None and hasattr(model.config, "synthesis_eta") and model.method == "semflow":
            model.config.synthesis_eta = args.eta
    rows = {}
    for folder, model in models.items():
        result = evaluate_synthesis(model, dataset, judges=judges, steps=args.steps, samples=args.samples,
                                    seed=args.seed, batch_size=16, indices=indices).to_json()
        rows[folder] = {**result, "synthesis_eta": getattr(model.config, "synthesis_eta", None), "parameters": int(sum(model.parameter_counts().values())),
                        "seconds_per_training_step": seconds_per_step(Path(folder))}
        print(folder, json.dumps(result["judged"]), flush=True)
    size = tuple(next(iter(models.values())).size)
    real = judge_real_images(dataset, judges, size, indices=indices, seed=args.seed)
    pretrained = "pretrained" in judges
    head = ["model", "FD ×1000", "KID ×10⁶", "SIS-mIoU (%)"] + (["SIS-mIoU, pretrained (%)"] if pretrained else []) + [
        "diversity (pixel L1)", "diversity (judge features)", "cycle mIoU (%)", "s / training step", "s / sample",
        "parameters"]
    lines = [f"Judge: {judge.name} ({args.judge}); {len(indices)} masks of `{args.data}` {args.split}, {args.samples} "
             f"samples each at {args.steps} steps, models at {size[0]}x{size[1]}.", "",
             "| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for folder, row in rows.items():
        j = row["judged"]["judge"]
        kid = _f(j["kid"], 1, 1e6) + (f" ± {1e6 * j['kid_std']:.1f}" if j["kid_std"] is not None else "")
        cells = [_f(j["fd"], 2, 1000), kid, _f(j["sis_miou"], 1, 100)]
        if pretrained:
            cells.append(_f(row["judged"]["pretrained"]["sis_miou"], 1, 100))
        cells += [_f(row["diversity_l1"]), _f(j["diversity"]), _f(row["cycle_miou"], 1, 100),
                  _f(row["seconds_per_training_step"]), _f(row["seconds_per_image"]), f"{row['parameters'] / 1e6:.2f}M"]
        lines.append(f"| {folder} | " + " | ".join(cells) + " |")
    c = real["judge"]
    cells = [_f(c["fd"], 2, 1000), _f(c["kid"], 1, 1e6) + (f" ± {1e6 * c['kid_std']:.1f}" if c["kid_std"] else ""),
             _f(c["sis_miou"], 1, 100)] + ([_f(real["pretrained"]["sis_miou"], 1, 100)] if pretrained else []) + ["—"] * 6
    lines.append("| real test images (ceiling) | " + " | ".join(cells) + " |")
    lines += ["", f"Judge's mIoU on these real images at its own size: {100 * c['miou_own_size']:.1f} %"
              + (f"; the release's at its size: {100 * real['pretrained']['miou_own_size']:.1f} %" if pretrained else "")
              + f". {time.perf_counter() - began:.0f} s, {args.threads} thread(s), load average "
              f"{os.getloadavg()[0]:.1f} at the end."]
    table = "\n".join(lines) + "\n"
    print(table)
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "models"}
    settings["judges"] = {role: j.name for role, j in judges.items()}
    write_json({"settings": settings, "rows": rows, "real_images": real}, args.out)
    write_text(table, args.out.with_suffix(".md"))
    if args.grid:
        write_image(synthesis_grid(models, dataset, indices, steps=args.steps, seed=args.seed), args.grid)
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}" + (f" and {args.grid}" if args.grid else ""))


if __name__ == "__main__":
    main()

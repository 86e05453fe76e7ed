"""Where a many-step segmentation solve loses: the predicted mask end after every step, and the network at later t.

Two tables for one SemFlow model, scored at the model size on every second image of a split:

* the mIoU of the mask end ``z + (1 - t) v`` that each step of an ``N``-step solve predicts, for Euler and for
  ``snap`` (the solver's projection hook records the raw end; for Euler the hook returns it unchanged, which is
  Euler exactly);
* the mIoU of that end when the network is asked at time ``t`` from the image's start state (no mask in it) and
  from the true path state ``(1 - t) z0 + t z1``.

docs/quality.md's tables came from::

    python bench/trajectory_probe.py --model runs/camvid/recs1 --data camvid:../shared/data/camvid --threads 1
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

TIMES = (0.0, 0.02, 0.04, 0.1, 0.2, 0.5, 0.8)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, type=Path)
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "trajectory_probe.json")
    args = p.parse_args()

    from semflow.data import open_dataset
    from semflow.data.transforms import resize_label
    from semflow.evaluation.metrics import ConfusionMatrix
    from semflow.evaluation.segmentation import collate_at_size
    from semflow.flow.solver import ODESolver, time_grid
    from semflow.models.semflow import SemFlowPipeline
    from semflow.seeding import make_generator

    if args.threads:
        torch.set_num_threads(args.threads)
    model = SemFlowPipeline.from_pretrained(args.model).eval()
    data = open_dataset(args.data, args.split)
    info = data.info

    def matrices(n: int) -> list[ConfusionMatrix]:
        return [ConfusionMatrix(info.num_classes, info.ignore_index) for _ in range(n)]

    def labels_of(state: torch.Tensor) -> torch.Tensor:
        return model.palette.decode(model.decode_pseudo_masks(model.layout.mask_part(state)).float())

    solves = {"euler": matrices(args.steps), "snap": matrices(args.steps)}
    probes = {"start state": matrices(len(TIMES)), "true path": matrices(len(TIMES))}
    indices = list(range(0, len(data), 2))
    with torch.no_grad():
        for first in range(0, len(indices), 32):
            batch = collate_at_size([data[i] for i in indices[first:first + 32]], model.size)
            truth = resize_label(torch.stack(batch["labels"]), model.size)
            z0 = model.layout.image_state(model.encode_input(batch["images"]),
                                          make_generator(0) if model.layout.noise else None, per_sample=False)
            for name, scores in solves.items():
                ends = []

                def record(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
                    end = model.velocity.predict(z, t).z1
                    ends.append(labels_of(end))
                    return model.snap_to_palette(end) if name == "snap" else end

                ODESolver(model.velocity).sample(z0, time_grid(args.steps), method="snap", far_end=record)
                for matrix, predicted in zip(scores, ends):
                    for a, b in zip(predicted, truth):
                        matrix.update(a, b)
            z1 = model.layout.mask_state(model.encode_masks(truth, generator=make_generator(1)), make_generator(2))
            for j, t in enumerate(TIMES):
                for name, state in (("start state", z0), ("true path", (1 - t) * z0 + t * z1)):
                    end = model.velocity.predict(state, torch.full((state.shape[0],), t)).z1
                    for a, b in zip(labels_of(end), truth):
                        probes[name][j].update(a, b)

    result = {"model": str(args.model), "data": args.data, "split": args.split, "images": len(indices),
              "solve_steps": args.steps,
              "end_miou_by_step": {k: [m.scores().miou for m in v] for k, v in solves.items()},
              "times": list(TIMES), "end_miou_at_t": {k: [m.scores().miou for m in v] for k, v in probes.items()}}
    for name, values in result["end_miou_by_step"].items():
        print(f"{name}: predicted end by step: " + " ".join(f"{100 * v:.1f}" for v in values))
    for name, values in result["end_miou_at_t"].items():
        print(f"{name}: " + ", ".join(f"t={t}: {100 * v:.1f}" for t, v in zip(TIMES, values)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""The quality ablation: one row per training or sampling option, same data, same budget, both directions.

Every row trains the demo's model (built-in shapes, 32x32 pixel space, UNet 16-32-64, batch 16) for the same
number of steps from one preset plus the row's overrides, then scores

* segmentation mIoU at 1, 2, 5, 10 and 25 Euler steps on 256 test images (the demo's protocol);
* synthesis on 32 test masks, 4 samples each at 25 steps: diversity (mean pairwise pixel L1 between the samples
  of one mask) and cycle mIoU (the model segments its own samples back in one step).

Rows run one after another in this process (so that a row's time is comparable: the script says how loaded the
machine was). The table's ``command`` column is the ``semflow train`` call that trains the same model.

Example::

    nice python bench/ablation.py --rows paper recommended --steps 750 --threads 2

Prints a Markdown table and writes ``bench/results/ablation.json`` (rows are added to an existing file, so a long
ablation can be run in parts).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from semflow.config import DEFAULT_PRESET, demo_config, from_dict, parse_override, to_dict, RunConfig
from semflow.data import open_dataset
from semflow.evaluation import evaluate_segmentation, evaluate_synthesis
from semflow.training import train

STEPS = [1, 2, 5, 10, 25]
T_END = ["model.objective.t0_mass=0.5", "model.objective.t1_mass=0.1"]
# name: (preset, overrides). One change from the paper's recipe per row, then the combination that wins and
# its variations (each with one change from it).
ODE = ["model.synthesis_eta=0", "model.match_texture=false"]  # synthesis by the ODE, not the eta matched to texture
ROWS: dict[str, tuple[str, list[str]]] = {
    "paper": ("paper", []),
    "time-endpoints": ("paper", T_END),
    "beta-64": ("paper", ["model.beta=64"]),
    "self-align-30": ("paper", ["model.objective.self_align_fraction=0.3"]),
    "stacked": ("paper", ["model.state=stacked"]),
    "stacked-noise-0.1": ("paper", ["model.state=stacked", "model.state_noise=0.1"]),
    "recommended": (DEFAULT_PRESET, []),
    "recommended-noise-0": (DEFAULT_PRESET, ["model.state_noise=0"]),
    "recommended-noise-0.25": (DEFAULT_PRESET, ["model.state_noise=0.25"]),
    "recommended-shared": (DEFAULT_PRESET, ["model.state=shared", "model.state_noise=0", "model.image_source=fill",
                                            "model.state_image_noise=0"] + ODE),
    "recommended-palette": (DEFAULT_PRESET, ["model.readout=palette"]),
    "recommended-fill": (DEFAULT_PRESET, ["model.image_source=fill", "model.state_image_noise=0"] + ODE),
    # Synthesis with texture (docs/synthesis.md): Gaussian noise on the class colours at the mask end's image part,
    # synthesized by the ODE (--etas scores stochastic synthesis on the same models).
    "source-noise-0": (DEFAULT_PRESET, ["model.state_image_noise=0"] + ODE),
    "source-noise-0.05": (DEFAULT_PRESET, ["model.state_image_noise=0.05"] + ODE),
    "source-noise-0.1": (DEFAULT_PRESET, ["model.state_image_noise=0.1"] + ODE),
    # More training mass at the synthesis end (t = 1): 30% instead of 10%, taken from the uniform share.
    "t1-mass-0.3": (DEFAULT_PRESET, ["model.objective.t1_mass=0.3"]),
    "source-noise-0.15": (DEFAULT_PRESET, ["model.state_image_noise=0.15"] + ODE),
    "source-noise-0.2": (DEFAULT_PRESET, ["model.state_image_noise=0.2"] + ODE),
    "source-noise-0.25": (DEFAULT_PRESET, ["model.state_image_noise=0.25"] + ODE),
}


def configure(name: str, steps: int, size: int) -> RunConfig:
    preset_name, overrides = ROWS[name]
    data = to_dict(demo_config(size, seed=0, preset_name=preset_name))
    for item in overrides:
        keys, value = parse_override(item)
        node = data
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    config = from_dict(RunConfig, data)
    config.train.steps = steps
    return config


def command(name: str, steps: int, size: int) -> str:
    preset_name, overrides = ROWS[name]
    sets = " ".join(f"--set {item}" for item in overrides)
    return (f"semflow train --out runs/ablation/{name} --preset {preset_name} --data shapes:size={size} "
            f"--size {size} {size} --palette spread "
            f"--steps {steps} --batch-size 16 --lr 2e-3 --set train.warmup_steps=50 "
            f"--set model.network_args.block_out_channels=[16,32,64] {sets}").strip()


def _synthesis_scores(model, size: int) -> dict:
    syn = evaluate_synthesis(model, open_dataset(f"shapes:size={size},length=32", "test"), steps=25, samples=4,
                             cycle_steps=1, seed=0)
    return {"diversity_l1": syn.diversity_l1, "cycle_miou": syn.cycle_miou, "hf_energy": syn.hf_energy,
            "hf_energy_real": syn.hf_energy_real, "hf_ratio": syn.hf_ratio}


def run_row(name: str, steps: int, size: int, work: Path, etas: list[float] = ()) -> list[dict]:
    """The row ``name``, then one row ``NAME+eta-E`` per synthesis ``eta`` scored on the same trained model (its
    training and segmentation are the row's: ``model.synthesis_eta`` changes synthesis alone)."""
    config = configure(name, steps, size)
    began = time.perf_counter()
    model, result = train(config, work / name, progress_bar=False)
    train_seconds = time.perf_counter() - began
    test = open_dataset(f"shapes:size={size},length=256", "test")
    seg = evaluate_segmentation(model, test, STEPS, batch_size=64)
    row = {"row": name, "command": command(name, steps, size), "train_steps": result.steps,
           "train_seconds": train_seconds, "final_loss": result.final_loss,
           "solver": model.default_solver, "synthesis_eta": model.config.synthesis_eta,
           "miou": {str(n): seg.scores[n].miou for n in STEPS},
           **_synthesis_scores(model, size), "load_average": os.getloadavg()}
    rows = [row]
    for eta in etas:
        model.config.synthesis_eta = eta
        rows.append({**row, "row": f"{name}+eta-{eta:g}", **_synthesis_scores(model, size),
                     "command": f"{row['command']} --set model.synthesis_eta={eta:g}", "load_average": os.getloadavg()})
    return rows


def _ratio(row: dict) -> str:
    """The high-frequency energy ratio of a row, or ``-`` for rows measured before it existed."""
    return "-" if row.get("hf_ratio") is None else f"{row['hf_ratio']:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS), help="rows to run (default all)")
    parser.add_argument("--steps", type=int, default=750, help="training steps of every row (default 750: the "
                        "demo's budget on 2 quiet cores)")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default torch's)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/ablation.json"))
    parser.add_argument("--etas", type=float, nargs="+", default=[], help="also score each row's synthesis with "
                        "these model.synthesis_eta values (rows NAME+eta-E, same trained model)")
    parser.add_argument("--keep", type=Path, help="keep the trained models in this folder (default: a temporary one)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    with tempfile.TemporaryDirectory() as work:
        for name in args.rows:
            for row in run_row(name, args.steps, args.size, args.keep or Path(work), args.etas):
                results[row["row"]] = row
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(results, indent=1) + "\n")
                print(f"{row['row']}: " + json.dumps({k: row[k] for k in ("miou", "diversity_l1", "cycle_miou",
                                                                          "hf_ratio")}), flush=True)
    print(f"\n| row | mIoU 1 | 2 | 5 | 10 | 25 | diversity | cycle mIoU | HF ratio | train s |\n"
          "|---|---|---|---|---|---|---|---|---|---|")
    for name, row in results.items():
        m = row["miou"]
        print(f"| {name} | " + " | ".join(f"{m[str(n)]:.3f}" for n in STEPS)
              + f" | {row['diversity_l1']:.4f} | {row['cycle_miou']:.3f} | {_ratio(row)} | {row['train_seconds']:.0f} |")


if __name__ == "__main__":
    main()

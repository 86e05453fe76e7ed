"""``semflow bench paper``'s experiment: train (or reuse) SemFlow, DSM and a discriminative model on one data set with one
backbone and budget, and write the analogs of the paper's Table 1 (segmentation and synthesis) and Table 2
(mIoU against sampling steps) as Markdown, JSON and a plot.

Synthesis is scored by an independent judge (``semflow bench judge``): an ESPNet trained once per data set on the
real training images, kept in a cache folder (--judges) and reused by every later run; --judge-weights starts it
from a local ESPNet release file and also scores the syntheses with those weights as they are (an extra column).
OUT/synthesis.png shows, for the same test masks, the real image and two samples of every synthesizer.

SemFlow is trained twice, with the ``recommended`` preset (``semflow train``'s default) and with the ``paper``
preset (the authors' recipe), on the same data, budget, network and --palette, so that their rows differ only
in the flow recipe. OUT/models/{semflow,semflow-paper,dsm,discriminative} hold the four models; a model whose
train_config.json matches is reused, an interrupted one resumes from its last checkpoint. OUT/paper.md,
OUT/paper.json, OUT/paper.png and OUT/synthesis.png are the results.
"""

from __future__ import annotations

import copy
import json
import shlex
import time
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from tqdm.auto import tqdm

from semflow.errors import SemflowInputError
from semflow.experiments.judge import JudgeOptions
from semflow.io import write_image

# The demo's UNet (0.7M parameters): small enough for the four models on 2 CPU cores at 48x64 (three took well
# under an hour). Any --set model.network... replaces it.
DEFAULT_NETWORK = {"block_out_channels": [16, 32, 64]}
# The trained models: folder under OUT/models -> (model.method, preset). SemFlow with the new default and with
# the authors' recipe, side by side. The baselines take no preset (the dataclass defaults, as before presets
# existed; a preset's flow-only keys would not apply to them anyway), so that their folders keep being reused.
MODELS: dict[str, tuple[str, str | None]] = {
    "semflow": ("semflow", "recommended"), "semflow-paper": ("semflow", "paper"),
    "dsm": ("dsm", None), "discriminative": ("discriminative", None),
    # The synthesis rivals: their methods' fixed recipes (model.method_args defaults), same data and budget.
    "noise-flow": ("noise-flow", None), "spade": ("spade", None),
}
# Table 2's samplers: (model, solver). The paper preset with Euler only: its Heun row would add a second ODE
# sweep over every step count for a comparison the Euler row already makes.
SAMPLERS = (("semflow", "euler"), ("semflow", "heun"), ("semflow", "snap"), ("semflow-paper", "euler"), ("dsm", "ddim"),
            ("dsm", "ddpm"))
# Table 1's synthesizers (folders under OUT/models), each scored by the judges: the one list of them.
SYNTHESIS = ("semflow", "semflow-paper", "noise-flow", "spade")


@dataclass
class PaperOptions(JudgeOptions):
    """What defines a ``bench paper`` run (the command's flags): data, output folder, the shared training budget
    (``size``, ``train_steps``, ``batch_size``, ``lr``, codec, ``palette``, ``overrides``: ``section.key=value`` for
    all runs), the scoring (``steps``: Table 2's step counts, ``table1_steps``, ``split``, ``test_images``: evenly
    spaced images, 0 for all, ``samples`` per mask, FID/LPIPS weights, the judge's options) on ``device``;
    ``train_only``: train (or reuse) these models and stop."""

    data: str = "shapes"
    out: Path = Path("paper")
    size: list[int] = field(default_factory=lambda: [48, 64])
    train_steps: int = 1000
    batch_size: int = 8
    lr: float = 1e-3
    codec: str | None = None
    codec_path: str | None = None
    palette: str = "spread"
    overrides: list[str] = field(default_factory=list)
    steps: list[int] = field(default_factory=lambda: [1, 2, 5, 10, 25, 50])
    table1_steps: int = 25
    split: str | None = None
    test_images: int = 0
    samples: int = 2
    fid_weights: str | None = None
    lpips_weights: str | None = None
    no_fid: bool = False
    pretrained_judge_size: list[int] | None = None
    seed: int = 0
    batch_size_eval: int = 16
    num_workers: int = 0
    retrain: bool = False
    train_only: list[str] | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))


def run_config(args: PaperOptions, name: str):
    """The training configuration of model ``name`` (a key of :data:`MODELS`): the same data, budget, network
    and palette for all, then its method and preset (an explicit --palette beats the preset's)."""
    from semflow.config import load_run_config

    method, preset_name = MODELS[name]
    items = [f"train.data={json.dumps(args.data)}", f"train.steps={args.train_steps}",
             f"train.batch_size={args.batch_size}", f"train.lr={args.lr}", f"train.seed={args.seed}",
             f"train.num_workers={args.num_workers}", f"model.size={json.dumps(list(args.size))}",
             f"model.palette.kind={args.palette}",
             f"model.method={method}", "train.checkpoint_every=250"]
    if args.codec:
        items.append(f"model.codec={json.dumps(args.codec)}")
    if args.codec_path:
        items.append(f"model.codec_args.path={json.dumps(args.codec_path)}")
    if not any(item.startswith("model.network") for item in args.overrides):
        items.append(f"model.network_args={json.dumps(DEFAULT_NETWORK)}")
    config = load_run_config(None, items + list(args.overrides), preset_name=preset_name)
    if method == "spade":
        # The GAN is no UNet: it takes the backbone's widths per level (block_out_channels) and leaves the UNet's
        # own keys (blocks, attention, groups) to the others.
        config.model.network_args = {k: v for k, v in config.model.network_args.items() if k == "block_out_channels"}
    return config


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    """A saved or wanted configuration as reuse compares it: mixed precision changes no result."""
    config = copy.deepcopy(config)
    config["train"].pop("mixed_precision", None)
    return config


def plan(args: PaperOptions, configs: dict[str, Any]) -> dict[str, bool]:
    """Whether each model's folder is reused (``True``) or trained/resumed (``False``); raises, before any work,
    where a folder holds a model trained with another configuration and --retrain is not given."""
    from semflow.config import RunConfig, from_dict, to_dict, upgrade
    from semflow.training import TRAIN_CONFIG_FILE

    wanted = {name: _comparable(to_dict(copy.deepcopy(c))) for name, c in configs.items()}
    reuse = {}
    for name, config in configs.items():
        folder = args.out / "models" / name
        saved = folder / TRAIN_CONFIG_FILE
        reuse[name] = False
        if not saved.is_file() or args.retrain:
            continue
        try:
            # Through the dataclasses: options added since the folder was written take their defaults there.
            previous = _comparable(to_dict(from_dict(RunConfig, upgrade(json.loads(saved.read_text()), str(saved)))))
        except (OSError, ValueError, KeyError, TypeError, AttributeError, SemflowInputError):  # ValueError: bad JSON
            raise SemflowInputError(f"{saved} is not a training configuration; give another --out, or --retrain "
                                    "to replace it") from None
        if previous != wanted[name]:
            other = next((n for n, w in wanted.items() if n != name and w == previous), None)
            hint = (f" (it matches the {other} model: move the folder to {args.out / 'models' / other})"
                    if other else "")
            raise SemflowInputError(f"{folder} holds a {MODELS[name][0]} model trained with another configuration"
                                    f"{hint}; give another --out, or --retrain to replace it")
        reuse[name] = _finished(folder, config)
    return reuse


def train_or_reuse(args: PaperOptions, name: str, config, reuse: bool,
                   say: Callable[[str], None] = print) -> tuple[Any, dict[str, Any]]:
    """The trained model ``name`` under OUT/models (reused as :func:`plan` decided), and how it came about."""
    from semflow.training import train
    from semflow.models.base import Segmenter

    folder = args.out / "models" / name
    if reuse:
        say(f"semflow bench paper: reusing {folder}")
        return Segmenter.from_pretrained(folder), {"reused": True}
    say(f"semflow bench paper: training {name} ({config.train.steps} steps) in {folder}")
    began = time.perf_counter()
    pipe, result = train(config, folder, progress_bar=not args.no_progress,
                         resume=None if args.retrain else "latest", overwrite=args.retrain)
    if result.interrupted:
        raise KeyboardInterrupt
    return pipe, {"reused": False, "seconds": time.perf_counter() - began, "final_loss": result.final_loss,
                  "steps": result.steps}


def recipe_difference(paper, recommended) -> dict[str, list[Any]]:
    """The configuration keys (dotted) where the two SemFlow models differ: ``{key: [paper, recommended]}``."""
    from semflow.config import to_dict

    def flat(node: Any, prefix: str = "") -> dict[str, Any]:
        if not isinstance(node, dict):
            return {prefix: node}
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(flat(value, f"{prefix}.{key}" if prefix else key))
        return out

    a, b = flat(to_dict(paper)), flat(to_dict(recommended))
    return {key: [a.get(key), b.get(key)] for key in sorted(a.keys() | b.keys()) if a.get(key) != b.get(key)}


def _finished(folder: Path, config) -> bool:
    """The model folder's last logged step is the configured number of steps."""
    from semflow.models.base import CONFIG_NAME
    from semflow.training.history import LOSS_FILE

    loss = folder / LOSS_FILE
    if not (folder / CONFIG_NAME).is_file() or not loss.is_file():
        return False
    rows = loss.read_text().splitlines()[1:]
    return bool(rows) and int(rows[-1].split(",")[0]) >= config.train.steps


def perceptual_metrics(args: PaperOptions, device: torch.device) -> tuple[Any, Any, list[str]]:
    """FID and LPIPS metric objects where the extra and the weights exist; otherwise ``None`` and why."""
    from semflow.evaluation.perceptual import make_fid, make_lpips

    if args.no_fid:
        return None, None, ["FID/LPIPS skipped (--no-fid)"]
    notes: list[str] = []
    fid = lpips = None
    try:
        fid = make_fid(args.fid_weights, device=device)
    except SemflowInputError as err:
        if args.fid_weights:
            raise
        notes.append(f"FID not computed (--fid-weights): {err}")
    try:
        lpips = make_lpips("alex", args.lpips_weights, reduction="none").to(device)
    except SemflowInputError as err:
        if args.lpips_weights:
            raise
        notes.append(f"LPIPS not computed (--lpips-weights): {err}")
    return fid, lpips, notes


def run_paper(args: PaperOptions, say: Callable[[str], None] = print) -> dict[str, Any] | None:
    """Train or reuse the models, score them and write OUT/paper.md, paper.json, paper.png and synthesis.png;
    returns the results (what paper.json holds), or ``None`` after ``train_only``. Every configuration error is
    raised before any work."""
    from semflow.data import open_dataset
    from semflow.evaluation.segmentation import default_split, evaluate_segmentation
    from semflow.evaluation.subset import evenly_spaced_indices
    from semflow.experiments.judge import judge_from_options
    from semflow.experiments.paper_report import write_results
    from semflow.evaluation.judge import release_judge
    from semflow.evaluation.synthesis import evaluate_synthesis, judge_real_images
    from semflow.evaluation.synthesis_grid import synthesis_grid
    from semflow.training.history import seconds_per_step

    began = time.perf_counter()
    steps, device = list(args.steps), args.device
    configs = {name: run_config(args, name) for name in MODELS}  # every configuration error before any work
    train = open_dataset(args.data, "train")
    split = args.split or default_split(train.info)
    test = open_dataset(args.data, split)
    indices = evenly_spaced_indices(len(test), args.test_images)
    reuse = plan(args, configs)
    if args.train_only:
        for name in args.train_only:
            model, info = train_or_reuse(args, name, configs[name], reuse[name], say)
            say(f"semflow bench paper: {name}: {json.dumps({**info, 'parameters': model.parameter_counts()})}")
        return None
    fid, lpips, notes = perceptual_metrics(args, device)
    judge, judge_folder = judge_from_options(args, train)
    judges = {"judge": judge.eval()}
    if args.judge_weights:
        size = tuple(args.pretrained_judge_size) if args.pretrained_judge_size else judge.size
        judges["pretrained"] = release_judge(args.judge_weights, train, size)

    models, training = {}, {}
    for name, config in configs.items():
        model, info = train_or_reuse(args, name, config, reuse[name], say)
        models[name], training[name] = model.to(device).eval(), info

    def bar(desc: str):
        return lambda it: tqdm(it, desc=desc, unit="batch", disable=args.no_progress)

    table2: dict[str, Any] = {}
    for name, solver in SAMPLERS:
        say(f"semflow bench paper: scoring {name}-{solver} at steps {steps}")
        result = evaluate_segmentation(models[name], test, steps, solver=solver, batch_size=args.batch_size_eval,
                                       num_workers=args.num_workers, indices=indices, progress=bar(f"{name}-{solver}"))
        table2[f"{name}-{solver}"] = result.to_json()
    say("semflow bench paper: scoring discriminative")
    disc = evaluate_segmentation(models["discriminative"], test, [1], batch_size=args.batch_size_eval,
                                 num_workers=args.num_workers, indices=indices, progress=bar("discriminative"))
    table2["discriminative"] = disc.to_json()
    synthesis: dict[str, Any] = {}
    for name in SYNTHESIS:
        say(f"semflow bench paper: synthesizing with {name}, {args.samples} image(s) per mask at "
              f"{args.table1_steps} steps")
        made = evaluate_synthesis(models[name], test, judges=judges,
                                  steps=args.table1_steps, samples=args.samples, seed=args.seed,
                                  batch_size=args.batch_size_eval, fid=fid, lpips=lpips, indices=indices,
                                  progress=bar(f"synthesis {name}"))
        synthesis[name] = {**made.to_json(), "parameters": parameter_count(models[name]),
                           "seconds_per_training_step": seconds_per_step(args.out / "models" / name)}
        notes += [n for n in made.notes if n not in notes]  # the same for every model
    say("semflow bench paper: judging the real test images")
    real_images = judge_real_images(test, judges, tuple(args.size), indices=indices, seed=args.seed)
    grid = synthesis_grid({name: models[name] for name in SYNTHESIS}, test, indices or list(range(len(test))),
                          steps=args.table1_steps, seed=args.seed)
    results = {
        "command": shlex.join(["semflow", "bench", "paper", *_argv(args)]),
        "data": args.data, "split": split, "size": list(args.size), "codec": configs["semflow"].model.codec,
        "semflow_solver": models["semflow"].default_solver,
        "palette": args.palette,
        "num_images": disc.num_images, "split_images": len(test), "steps": steps,
        "table1_steps": args.table1_steps, "presets": {name: MODELS[name][1] for name in SYNTHESIS},
        "semflow_recipe_difference": recipe_difference(configs["semflow-paper"], configs["semflow"]),
        "training": training, "table2": table2, "synthesis": synthesis, "real_images": real_images,
        "judges": {role: {"name": j.name, "size": list(j.size), "record": j.record} for role, j in judges.items()},
        "judge_folder": str(judge_folder), "notes": notes,
        "device": str(device), "threads": torch.get_num_threads(),
    }
    results["total_seconds"] = time.perf_counter() - began
    write_results(results, args.out)
    write_image(grid, args.out / "synthesis.png")
    return results


def parameter_count(model) -> int:
    """Trained parameters of a model (all its parts: a GAN's discriminator too)."""
    return int(sum(model.parameter_counts().values()))


def _argv(args: PaperOptions) -> list[str]:
    """The options that define the run, as a command line (for the tables' provenance; shell-quote it)."""
    out = ["--data", args.data, "--out", str(args.out), "--size", *map(str, args.size),
           "--train-steps", str(args.train_steps), "--batch-size", str(args.batch_size), "--lr", f"{args.lr:g}",
           "--palette", args.palette, "--steps", ",".join(map(str, args.steps)),
           "--table1-steps", str(args.table1_steps), "--test-images", str(args.test_images),
           "--samples", str(args.samples), "--seed", str(args.seed)]
    if args.split:
        out += ["--split", args.split]
    if args.no_fid:
        out.append("--no-fid")
    if args.codec:
        out += ["--codec", args.codec]
    if args.codec_path:
        out += ["--codec-path", args.codec_path]
    if args.judge:
        out += ["--judge", str(args.judge)]
    if args.judge_weights:
        out += ["--judge-weights", args.judge_weights]
    if args.pretrained_judge_size:
        out += ["--pretrained-judge-size", *map(str, args.pretrained_judge_size)]
    out += ["--judge-steps", str(args.judge_steps)]
    for item in args.overrides:
        out += ["--set", item]
    return out

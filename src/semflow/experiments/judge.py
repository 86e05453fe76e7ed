"""The judge of syntheses a ``bench`` run uses (:mod:`semflow.evaluation.judge`): given as a folder, or trained once
per data set and kept in a cache folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm


@dataclass
class JudgeOptions:
    """``judge``: a judge folder used as it is; else the cache's (``judges``: its folder, default semflow's cache),
    trained there if absent from ``judge_weights`` (a local ESPNet release, else from scratch) for ``judge_steps``
    at ``judge_batch_size``, ``judge_lr`` and ``judge_size`` (``None``: the training images' median size)."""

    judge: Path | None = None
    judges: Path | None = None
    judge_weights: str | None = None
    judge_steps: int = 3000
    judge_batch_size: int = 8
    judge_lr: float = 5e-4
    judge_size: list[int] | None = None
    no_progress: bool = False


def judge_from_options(options: JudgeOptions, train: Any) -> tuple[Any, Path]:
    """The judge the options name for the training split ``train``: ``judge`` as it is (checked against the data's
    classes), else the cache's (trained there if absent). Returns ``(judge, folder)``."""
    from semflow.evaluation.judge import Judge, JudgeConfig, default_size, obtain_judge

    if options.judge is not None:
        judge = Judge.load(options.judge)
        judge.check_compatible(train.info, where=f"the judge in {options.judge}")
        return judge, options.judge
    size = tuple(options.judge_size) if options.judge_size else default_size(train)
    config = JudgeConfig(size=size, steps=options.judge_steps, batch_size=options.judge_batch_size,
                         lr=options.judge_lr, pretrained=options.judge_weights)
    return obtain_judge(train, config, options.judges,
                        progress=lambda it: tqdm(it, desc="judge", unit="step", disable=options.no_progress))


def judged_synthesis(pipe: Any, dataset: Any, data: str, options: JudgeOptions, steps: int, samples: int, seed: int,
                     batch_size: int, indices: list[int] | None = None) -> tuple[Any, Any, Path]:
    """``pipe``'s samples of the masks ``indices`` of ``dataset`` scored by the judge the options name for the data
    set ``data`` (and, with ``judge_weights``, by the release as it is). Returns ``(result, judge, folder)``."""
    from semflow.data import open_dataset
    from semflow.evaluation.judge import release_judge
    from semflow.evaluation.synthesis import evaluate_synthesis

    train = open_dataset(data, "train")
    judge, folder = judge_from_options(options, train)
    judges = {"judge": judge.eval()}
    if options.judge_weights:
        judges["pretrained"] = release_judge(options.judge_weights, train, judge.size)
    result = evaluate_synthesis(pipe, dataset, judges=judges, steps=steps, samples=samples, solver=None, seed=seed,
                                batch_size=batch_size, indices=indices,
                                progress=lambda it: tqdm(it, desc="synthesis", unit="batch", disable=options.no_progress))
    return result, judge, folder

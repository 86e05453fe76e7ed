"""The training loop: HF Accelerate around :meth:`semflow.models.base.Segmenter.training_loss`.

Accelerate picks the device(s), processes and precision, so the same loop runs on a laptop CPU and on
GPUs (``accelerate launch -m semflow train ...``). The library (everything outside ``training/`` and ``cli/``)
knows nothing of it. :func:`train` is :func:`setup`, then :func:`train_step` per micro-batch inside the epoch
loop (logging, checkpoints, stopping), then :func:`finish`.

Runs are resumable (:mod:`semflow.training.checkpoint`). SIGINT/SIGTERM finish the current step, write a
checkpoint and stop; a non-finite loss stops the run naming the step, keeping the last good checkpoint.

Distributed runs (``accelerate launch``, ``torchrun``; see ``docs/distributed.md``): every process trains on its
share of each batch and Accelerate averages the gradients; only process 0 writes the model, ``loss.csv`` and the
config (each process adds its own RNG state to a checkpoint, as Accelerate does). The stop decision (signal,
time limit, non-finite loss) is agreed by all processes at each step, so they checkpoint and stop together, and
at the end the processes compare parameter checksums and fail loudly if they ever diverged.
"""

from __future__ import annotations

import copy
import json
import math
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from diffusers.optimization import get_cosine_schedule_with_warmup
from diffusers.training_utils import EMAModel
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from semflow.codecs import Posterior
from semflow.config import RunConfig, from_dict, save_json, to_dict, upgrade
from semflow.data import open_dataset
from semflow.data.base import SegmentationDataset
from semflow.data.cache import DecodedCache
from semflow.data.paired import BAD_FILES, PairedDataset, report_bad_files
from semflow.data.transforms import TRAIN_SCALE
from semflow.errors import SemflowInputError, SemflowOutputError
from semflow.models.base import CODEC_DIR, CONFIG_NAME, NETWORK_DIR, Segmenter, TrainingTime
from semflow.outputs import FolderLock, check_output_folder, write_failure
from semflow.training.checkpoint import (
    CHECKPOINTS_DIR, Progress, identity_differences, list_checkpoints, load_extra_state, resolve_resume, run_identity,
    save_checkpoint,
)
from semflow.training.data import CachedPairs, TrainingPairs
from semflow.training.history import LOSS_FILE, Row, read_loss, write_loss
from semflow.training.latents import build_posterior_cache
from semflow.training.scenes import cached_scenes, dataset_scenes, image_scenes
from semflow.training.launcher import all_succeeded, make_accelerator, resolve_precision

TRAIN_CONFIG_FILE = "train_config.json"
__all__ = ["BAD_FILES", "CHECKPOINTS_DIR", "LOSS_FILE", "TRAIN_CONFIG_FILE", "Run", "StopRequest", "TrainResult",
           "check_in_sync", "finish", "setup", "train", "train_step"]


@dataclass
class TrainResult:
    """What a finished (or interrupted) run reports."""

    steps: int
    final_loss: float
    seconds: float
    seconds_per_step: float
    interrupted: bool = False
    process_index: int = 0
    num_processes: int = 1
    lr: float = 0.0
    effective_batch_size: int = 0
    #: Optimiser steps this call made (0: a resumed run that had already reached ``train.steps``).
    trained_steps: int = 0


class Diverged(SemflowInputError):
    """The training loss became NaN or infinite (a learning rate too high for the data, for example)."""


class StopRequest:
    """Turns SIGINT/SIGTERM into a flag the loop checks after each step (restored on exit)."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.signal = signum

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


@dataclass
class Run:
    """Everything :func:`setup` prepared: the model, its prepared (possibly wrapped) trainable module, the data,
    the optimiser and schedule, and where the run stands."""

    config: RunConfig
    out: Path
    accelerator: Accelerator
    model: Segmenter
    trained: torch.nn.Module
    pairs: TrainingPairs | CachedPairs
    #: The training split as opened, unaugmented and uncached (for what a method settles after training: its images
    #: resized once to the model size, as evaluation resizes test images).
    dataset: SegmentationDataset
    loader: Any
    optimizer: Any
    scheduler: Any
    ema: EMAModel | None
    progress: Progress
    noise: torch.Generator
    lr: float
    effective_batch_size: int
    resumed: bool
    identity: dict[str, Any] = field(default_factory=dict)
    lock: FolderLock | None = None
    rows: list[Row] = field(default_factory=list)
    #: Files of the run that ``out`` held before this run began (what a failed fresh run must leave in place).
    before: frozenset[str] = frozenset()
    #: A write that failed on this process (``loss.csv``), reported to all processes at the next step.
    write_error: BaseException | None = None

    def release(self) -> None:
        """Let another run write ``out`` (called by :func:`train` at the end, also on failure)."""
        if self.lock is not None:
            self.lock.release()


# What a run writes into its folder besides checkpoints/ (removed by ``overwrite``).
RUN_FILES = (CONFIG_NAME, NETWORK_DIR, CODEC_DIR, LOSS_FILE, BAD_FILES, TRAIN_CONFIG_FILE)


def claim_folder(out: Path, identity: dict[str, Any], overwrite: bool, is_main: bool) -> None:
    """A fresh run takes ``out`` only if no other run's work is there: checkpoints (of any run; continue them with
    ``resume="latest"``) or a model trained with another configuration. ``overwrite`` removes them first."""
    checkpoints = list_checkpoints(out)
    saved = out / TRAIN_CONFIG_FILE
    other = None
    if checkpoints:
        other = f"checkpoints of a run (newest {checkpoints[-1].name}); continue it with --resume latest"
    elif saved.is_file():
        try:
            previous = run_identity(from_dict(RunConfig, upgrade(json.loads(saved.read_text()), str(saved))))
        except (OSError, ValueError, TypeError, SemflowInputError):
            previous = None
        if previous != identity:
            differ = identity_differences(previous, identity) if previous is not None else ["unreadable"]
            other = f"a model trained with another configuration (different {', '.join(differ[:4])})"
    if other is None:
        return
    if not overwrite:
        raise SemflowInputError(f"--out {out} already holds {other}; start over with --overwrite "
                                "(which deletes it) or choose another --out")
    if is_main:
        for name in (CHECKPOINTS_DIR, *RUN_FILES):
            path = out / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()


def setup(config: RunConfig, out: Path, dataset: SegmentationDataset | None = None,
          resume: str | None = None, overwrite: bool = False) -> Run:
    """Accelerator, data, model, optimiser and schedule for ``config``; resumes from ``resume`` (``latest`` or a
    checkpoint folder of this run) and writes ``train_config.json`` (the resolved configuration) to ``out``.

    ``out`` belongs to one run: a fresh run over another run's checkpoints or model is refused unless
    ``overwrite`` (see :func:`claim_folder`), and two runs never write it at once (:class:`FolderLock`).
    """
    config = copy.deepcopy(config)  # the precision a launcher chose is recorded in the saved config
    tc = config.train
    tc.mixed_precision = resolve_precision(tc)
    out = check_output_folder(Path(out))
    accelerator = make_accelerator(tc)
    lock = FolderLock(out).acquire() if accelerator.is_main_process else None
    try:
        return _setup(config, out, dataset, resume, overwrite, accelerator, lock)
    except BaseException:
        if lock is not None:
            lock.release(cleanup=True)
        raise


def _setup(config: RunConfig, out: Path, dataset: SegmentationDataset | None, resume: str | None, overwrite: bool,
           accelerator: Accelerator, lock: FolderLock | None) -> Run:
    tc = config.train
    set_seed(tc.seed)
    identity = run_identity(config)
    with accelerator.main_process_first():  # process 0 sets incomplete checkpoints aside before the others look
        start_from = resolve_resume(out, resume, identity, accelerator.num_processes, say=accelerator.print,
                                    set_aside=accelerator.is_main_process)
    if start_from is None:
        claim_folder(out, identity, overwrite, accelerator.is_main_process)
    accelerator.wait_for_everyone()
    dataset = dataset if dataset is not None else open_dataset(tc.data, "train", skip_bad=tc.skip_bad)
    if len(dataset) == 0:
        raise SemflowInputError(f"data set {tc.data!r}: the train split is empty")
    report_bad_files(dataset, out / BAD_FILES, accelerator.is_main_process)
    model = Segmenter.from_config(config.model, dataset.info)
    split = dataset  # as evaluation reads it: the decoded cache below stores images already shrunk
    if tc.cache and not tc.cache_latents and isinstance(dataset, PairedDataset):
        with accelerator.main_process_first():  # one process builds, the others reuse
            dataset = DecodedCache.build(dataset, min_size=model.size, scale_max=TRAIN_SCALE[1],
                                         workers=max(tc.num_workers, 1))
    model.codec.requires_grad_(False)
    model.to(accelerator.device)

    pairs: TrainingPairs | CachedPairs
    if tc.cache_latents:
        cache = build_posterior_cache(accelerator, model, dataset, tc.augment, tc.batch_size, tc.num_workers)
        pairs = CachedPairs(cache, tc.seed, tc.augment)
    else:
        pairs = TrainingPairs(dataset, model.size, tc.seed, tc.augment)
    began = time.perf_counter()
    message = model.prepare_training(cached_scenes(pairs.cache) if isinstance(pairs, CachedPairs)
                                     else dataset_scenes(model, dataset))
    if message:
        accelerator.print(f"{message} in {time.perf_counter() - began:.1f} s")
    loader = DataLoader(pairs, batch_size=tc.batch_size, shuffle=True, drop_last=len(pairs) >= tc.batch_size,
                        num_workers=tc.num_workers)
    lr_factor = accelerator.num_processes * tc.gradient_accumulation_steps if tc.scale_lr else 1
    lr = tc.lr * lr_factor
    # The fused kernel: one pass over all tensors, not a loop per tensor (docs/distributed.md, "Training overhead").
    fused = {"fused": True} if accelerator.device.type in ("cpu", "cuda") else {}
    # The method's parameter groups (one, or a GAN's generator and discriminator at their own rates and betas).
    optimizer = torch.optim.AdamW(model.param_groups(lr), lr=lr, weight_decay=tc.weight_decay, **fused)
    scheduler = get_cosine_schedule_with_warmup(optimizer, min(tc.warmup_steps, tc.steps // 2), tc.steps)
    trained, optimizer, loader, scheduler = accelerator.prepare(model.trainable, optimizer, loader, scheduler)
    ema = EMAModel(model.trainable.parameters(), decay=tc.ema_decay) if tc.ema_decay else None
    progress = Progress()
    noise = torch.Generator(device=accelerator.device)
    # Progress and EMA are not registered with Accelerate, which would pickle them (and unpickle anything):
    # they are saved as JSON and safetensors by semflow.training.checkpoint.
    if start_from is not None:
        try:
            accelerator.load_state(str(start_from))
        except (RuntimeError, ValueError, KeyError) as err:
            reason = str(err).strip().splitlines()
            raise SemflowInputError(f"--resume {start_from}: does not fit this model "
                                    f"({(reason[1:] or reason or ['?'])[0].strip()})") from None
        load_extra_state(start_from, progress, ema, accelerator.device)
        if progress.batch_in_epoch > len(loader):
            raise SemflowInputError(f"{start_from}: batch {progress.batch_in_epoch} of an epoch of {len(loader)}; "
                                    "the checkpoint does not belong to this data (or its progress.json was edited)")
        if accelerator.is_main_process:
            accelerator.print(f"resuming from {start_from} (step {progress.step})")
    effective = tc.batch_size * tc.gradient_accumulation_steps * accelerator.num_processes
    before = frozenset(name for name in RUN_FILES if (out / name).exists())
    error: BaseException | None = None
    if accelerator.is_main_process:
        try:
            out.mkdir(parents=True, exist_ok=True)
            save_json(to_dict(config), out / TRAIN_CONFIG_FILE)
        except Exception as err:  # noqa: BLE001  (reported to every process before any raises)
            error = err
    if not all_succeeded(accelerator, error is None):
        raise error if error is not None else SemflowOutputError(
            f"process 0 could not write {out / TRAIN_CONFIG_FILE}; every process stops")
    if accelerator.is_main_process:
        counts = model.parameter_counts()
        accelerator.print(f"{model.method} model: " + ", ".join(f"{part} {n:,} parameters" for part, n in counts.items()))
        if effective != tc.batch_size or tc.scale_lr:
            how = (f"train.lr {tc.lr:g} x {lr_factor} (train.scale_lr: linear scaling)" if tc.scale_lr
                   else "as given (train.scale_lr=true scales it linearly)")
            accelerator.print(f"effective batch size {effective} = {accelerator.num_processes} process(es) x "
                              f"{tc.batch_size} per process x {tc.gradient_accumulation_steps} accumulation step(s); "
                              f"lr {lr:g} {how}")
    rows = read_loss(out / LOSS_FILE, progress.step) if start_from is not None else []
    return Run(config=config, out=out, accelerator=accelerator, model=model, trained=trained, pairs=pairs,
               dataset=split, loader=loader, optimizer=optimizer, scheduler=scheduler, ema=ema, progress=progress,
               noise=noise, lr=lr, effective_batch_size=effective, resumed=start_from is not None, identity=identity,
               lock=lock, rows=rows, before=before)


def train_step(run: Run, batch: Any) -> torch.Tensor:
    """One micro-batch: the loss (noise from the batch's own generator), its gradients and, at the end of an
    accumulation cycle, the clipped optimiser and schedule step. Returns the loss, detached."""
    tc, accelerator = run.config.train, run.accelerator
    generator = run.progress.noise_for(run.noise, tc.seed, accelerator.process_index)
    at = TrainingTime(run.progress.step, tc.steps)
    with accelerator.accumulate(run.trained), accelerator.autocast():
        if tc.cache_latents:
            mean, std, labels = batch
            loss = run.model.posterior_training_loss(Posterior(mean, std), labels, trainable=run.trained,
                                                     generator=generator, at=at)
        else:
            images, labels = batch
            loss = run.model.training_loss(images, labels, trainable=run.trained, generator=generator, at=at)
        accelerator.backward(loss)
        if accelerator.sync_gradients and tc.grad_clip > 0:
            accelerator.clip_grad_norm_(run.trained.parameters(), tc.grad_clip)
        run.optimizer.step()
        if accelerator.sync_gradients:
            run.scheduler.step()
        run.optimizer.zero_grad(set_to_none=True)
    run.progress.batch_in_epoch += 1
    return loss.detach()


def check_in_sync(accelerator: Accelerator, module: torch.nn.Module) -> float:
    """Compare per-tensor parameter sums across processes; raise if any process differs. Returns the total.

    Data parallelism keeps the copies identical by construction; this catches what would break it (a process
    that skipped a step, a launcher that started independent runs, non-deterministic kernels that drifted).
    """
    sums = torch.stack([p.detach().double().sum() for p in module.parameters()])
    if accelerator.num_processes > 1:
        everyone = accelerator.gather(sums[None].to(accelerator.device)).cpu()
        if not bool((everyone == everyone[0]).all()):
            totals = ", ".join(f"process {i}: {float(row.sum()):.10e}" for i, row in enumerate(everyone))
            raise RuntimeError(f"the processes ended with different parameters ({totals}); the run is not usable")
    return float(sums.sum())


def finish(run: Run, loss_value: float, seconds: float, first_step: int, elapsed_before: float,
           interrupted: bool) -> TrainResult:
    """Export the EMA weights (if any), check the processes agree, write ``loss.csv`` and the model folder."""
    accelerator, model, progress = run.accelerator, run.model, run.progress
    check_writes(run)
    if run.ema is not None:
        run.ema.copy_to(model.trainable.parameters())  # the EMA weights are what gets exported and scored
    checksum = check_in_sync(accelerator, model.trainable)
    done = progress.step - first_step
    unchanged = done == 0 and (run.out / CONFIG_NAME).is_file()  # a finished run resumed: its model stays as it is
    if not (interrupted or unchanged):  # every process alike (the same weights and seeds): the same model
        model.eval()
        message = model.finish_training(image_scenes(model, run.dataset))
        if message:
            accelerator.print(message)
    if accelerator.num_processes > 1:
        accelerator.print(f"parameters identical on all {accelerator.num_processes} processes (sum {checksum:.10e})")
    if accelerator.is_main_process and not unchanged:
        if progress.step and (not run.rows or run.rows[-1][0] != progress.step):
            run.rows.append((progress.step, loss_value, run.scheduler.get_last_lr()[0], elapsed_before + seconds))
        try:
            write_loss(run.out / LOSS_FILE, run.rows)
            model.save_pretrained(run.out)  # written beside and renamed: a failure keeps the previous model
        except Exception as err:  # noqa: BLE001
            if write_failure(err, run.out) is None:
                raise
            raise written_so_far(run, err, f"the model of step {progress.step} was not written") from None
    model.eval()
    return TrainResult(steps=progress.step, final_loss=loss_value, seconds=seconds,
                       seconds_per_step=seconds / max(done, 1), interrupted=interrupted,
                       process_index=accelerator.process_index, num_processes=accelerator.num_processes,
                       lr=run.lr, effective_batch_size=run.effective_batch_size, trained_steps=done)


def discard_diverged(run: Run) -> str:
    """What is kept of a run whose loss diverged: its checkpoints (resume the last with a lower --lr), or, where it
    wrote none, nothing: the files this run added to ``out`` are removed (so the folder is as it was)."""
    kept = list_checkpoints(run.out)
    if kept:
        return (f"the last good checkpoint is {kept[-1]} (resume with --resume latest, perhaps with a lower "
                "--lr, or start over with --overwrite)")
    if run.accelerator.is_main_process:
        for name in (*RUN_FILES, CHECKPOINTS_DIR):
            path = run.out / name
            if name in run.before or not path.exists():
                continue
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
    return "no checkpoint was written and nothing of this run is kept; try a lower --lr"


def check_writes(run: Run) -> None:
    """Every process learns whether one failed to write (``run.write_error``), and all stop together if so."""
    if not all_succeeded(run.accelerator, run.write_error is None):
        if run.write_error is not None:
            raise run.write_error
        raise SemflowOutputError(f"process 0 could not write to {run.out}; every process stops (its message says why)")


def written_so_far(run: Run, err: BaseException, lost: str) -> SemflowOutputError:
    """One line for a write that failed (a full disk): what failed, what was lost and what is kept."""
    kept = list_checkpoints(run.out)
    where = getattr(err, "filename", None) or run.out
    return SemflowOutputError(
        f"cannot write {where} ({write_failure(err, run.out) or err}); {lost}; "
        + (f"the last complete checkpoint is {kept[-1]} (resume with --resume latest once there is room)" if kept
           else "no checkpoint was written")
    )


def train(config: RunConfig, out: Path, dataset: SegmentationDataset | None = None,
          progress_bar: bool = True, resume: str | None = None,
          overwrite: bool = False) -> tuple[Segmenter, TrainResult]:
    """Train the model ``config.model`` describes as ``config.train`` says and write its folder to ``out``.

    ``out`` receives the model (``semflow_config.json``, ``network/``, ``codec/``; the EMA weights when
    ``ema_decay`` is set), ``train_config.json`` (the resolved configuration), ``loss.csv`` and
    ``checkpoints/``. ``resume`` is ``latest`` or a checkpoint folder; ``overwrite`` lets a fresh run replace
    another run's checkpoints and model in ``out`` (otherwise refused, see :func:`claim_folder`).

    Raises:
        SemflowOutputError: something could not be written (a full disk): temporary files are removed, the
            last complete checkpoint is kept, and the message says what was written and what was not.
    """
    run = setup(config, out, dataset, resume, overwrite)
    try:
        return run.model, _run(run, progress_bar)
    except Diverged as err:
        kept = discard_diverged(run)
        if run.lock is not None:
            run.lock.release(cleanup=True)  # a folder this run made, now empty, goes too
        raise Diverged(f"{err}; {kept}") from None
    except Exception as err:  # noqa: BLE001
        if isinstance(err, (SemflowInputError, SemflowOutputError)) or write_failure(err, out) is None:
            raise
        raise written_so_far(run, err, f"training stopped at step {run.progress.step}") from None
    finally:
        run.release()


def _run(run: Run, progress_bar: bool) -> TrainResult:
    tc, accelerator, progress, out = run.config.train, run.accelerator, run.progress, run.out
    first_step = progress.step
    began = time.perf_counter()
    elapsed_before = run.rows[-1][3] if run.rows else 0.0
    deadline = began + tc.max_minutes * 60 if tc.max_minutes else math.inf
    bar = tqdm(total=tc.steps, initial=progress.step, desc="train", unit="step",
               disable=not (progress_bar and accelerator.is_main_process))
    loss_value, interrupted = (run.rows[-1][1] if run.rows else math.nan), False
    loss_sum, micro_batches = torch.zeros((), device=accelerator.device), 0
    with StopRequest() as stop:
        while progress.step < tc.steps and not interrupted:
            run.pairs.epoch = progress.epoch
            run.loader.set_epoch(progress.epoch)
            batches = (accelerator.skip_first_batches(run.loader, progress.batch_in_epoch) if progress.batch_in_epoch
                       else run.loader)
            for batch in batches:
                loss = train_step(run, batch)
                loss_sum, micro_batches = loss_sum + loss.float(), micro_batches + 1
                if not accelerator.sync_gradients:
                    continue
                # One all-reduce per step: the mean loss over micro-batches and processes, and whether any
                # process wants to stop (a signal or the time limit), so that all stop at the same step.
                flags = loss_sum.new_tensor([stop.signal is not None, time.perf_counter() >= deadline,
                                             run.write_error is not None])
                shared = accelerator.reduce(torch.cat([(loss_sum / micro_batches)[None], flags]), reduction="sum")
                loss_value = float(shared[0]) / accelerator.num_processes
                signalled, stopping = bool(shared[1] > 0), bool(shared[1:3].sum() > 0)
                if shared[3] > 0:  # a process could not write loss.csv: all stop here
                    check_writes(run)
                loss_sum, micro_batches = torch.zeros((), device=accelerator.device), 0
                if not math.isfinite(loss_value):
                    raise Diverged(f"the loss is {loss_value} at step {progress.step + 1} (train.lr={tc.lr:g}); stopped")
                if run.ema is not None:
                    run.ema.step(run.model.trainable.parameters())
                progress.step += 1
                bar.update(1)
                if progress.step % tc.log_every == 0 or progress.step == tc.steps:
                    step_lr = run.scheduler.get_last_lr()[0]
                    run.rows.append((progress.step, loss_value, step_lr, elapsed_before + time.perf_counter() - began))
                    bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{step_lr:.2e}")
                    if accelerator.is_main_process:
                        try:
                            write_loss(out / LOSS_FILE, run.rows)
                        except Exception as err:  # noqa: BLE001  (reported to all at the next step)
                            if write_failure(err, out) is None:
                                raise
                            run.write_error = err
                if stopping or (tc.checkpoint_every and progress.step % tc.checkpoint_every == 0):
                    save_checkpoint(accelerator, out, progress, tc.checkpoints_total_limit, run.identity, run.ema)
                if stopping:
                    interrupted = signalled
                    break
                if progress.step >= tc.steps:
                    break
            else:
                progress.epoch += 1
                progress.batch_in_epoch = 0
                continue
            break  # left the epoch early: done, or stopping
    bar.close()
    seconds = time.perf_counter() - began
    return finish(run, loss_value, seconds, first_step, elapsed_before, interrupted)

"""Segmentation and synthesis over files: what ``semflow segment``, ``semflow synthesize`` and the app share.

* The files a segmentation is written as (``NAME.png``: the class map at the input's size in the data set's own
  label ids, 8-bit, 16-bit past 255; ``NAME_color.png``: the decoded pseudo-mask, nearest-resized to the input's
  size; ``NAME_vis.png``: the class map in the data set's display colours, where it has them) and the files of a
  synthesis (``NAME_0.png ... NAME_{K-1}.png`` at the mask's size).
* :func:`segment_files` and :func:`synthesize_files`: every output path planned and every input read and checked
  before anything is written; one writer per folder (:class:`semflow.outputs.FolderLock`); batches of the model;
  on a failed write, the outputs of the input being written are removed (whole inputs or nothing) and the error
  says how many were written.
* Under a launcher each process takes a contiguous share of the inputs (:class:`Processes`; the command line
  gives one backed by Accelerate, so the library never imports it), and writes the same files one process would.

The model's device and precision are the caller's; ``prepare`` runs after every input was checked (``--compile``
and ``--channels-last`` cost nothing for a run refused early).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, ContextManager, Iterable

import numpy as np
import torch
import torch.nn.functional as F

from semflow.data.labelmap import to_file_ids
from semflow.data.transforms import resize_image, resize_label
from semflow.errors import SemflowInputError, SemflowOutputError
from semflow.io import read_image, read_mask, write_image
from semflow.outputs import FolderLock, check_output_folder, plan_outputs
from semflow.rendering import colorize, mask_labels, pseudo_mask_rgb
from semflow.seeding import make_generator

if TYPE_CHECKING:
    from semflow.models.base import Segmenter

# Images per mask: each is a (K x mask) batch row at the model size, so K is bounded before anything is allocated.
MAX_SAMPLES = 1000

Progress = Callable[[Iterable[int]], Iterable[int]]
"""Wraps the iteration over batch starts (a progress bar); the identity by default."""


class Processes:
    """The processes a run is split over: one, unless a launcher started several (then a subclass, such as the
    command line's Accelerate-backed one, overrides all of it)."""

    num_processes: int = 1
    is_main_process: bool = True

    def share(self, count: int) -> list[int]:
        """This process's contiguous share of ``range(count)``."""
        return list(range(count))

    def stop_if_any_failed(self, error: SemflowInputError | None) -> None:
        """After each process checked its share: if any found bad input, all stop before writing."""
        if error is not None:
            raise error

    def wait_for_everyone(self) -> None:
        """Wait until every process has written its share."""


# ---------------------------------------------------------------------------------------------- file names, writers
def segmentation_names(stem: str, has_colors: bool) -> list[str]:
    """``NAME.png``, ``NAME_color.png`` (and ``NAME_vis.png`` where the data set has display colours)."""
    return [f"{stem}{suffix}.png" for suffix in (["", "_color", "_vis"] if has_colors else ["", "_color"])]


def synthesis_names(stem: str, samples: int) -> list[str]:
    """``NAME_0.png ... NAME_{K-1}.png``."""
    return [f"{stem}_{k}.png" for k in range(samples)]


def save_label_png(labels: np.ndarray, path: Path) -> None:
    """Integer labels ``(H, W)`` as an 8-bit PNG (16-bit when a value exceeds 255), written atomically."""
    dtype = np.uint8 if labels.max(initial=0) < 256 else np.uint16
    write_image(labels.astype(dtype), path)


def write_segmentation(out: Path, stem: str, labels: torch.Tensor, pseudo_mask: torch.Tensor,
                       pipe: Segmenter) -> list[Path]:
    """Write one image's segmentation files into ``out`` (:func:`segmentation_names`); returns their paths.

    Args:
        labels: int64 ``(H, W)`` class map at the input image's size.
        pseudo_mask: ``(3, h, w)`` decoded pseudo-mask levels at the model size (``SegmentationOutput.pseudo_mask[i]``).
        pipe: the model (data set ids and colours).
    """
    labels = labels.cpu()
    size = (int(labels.shape[-2]), int(labels.shape[-1]))
    paths = [Path(out) / name for name in segmentation_names(stem, pipe.dataset.colors is not None)]
    save_label_png(to_file_ids(labels, pipe.dataset), paths[0])
    write_image(pseudo_mask_rgb(pseudo_mask, size), paths[1])
    if len(paths) > 2:
        write_image(colorize(labels, pipe), paths[2])
    return paths


def to_mask_size(image: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """One synthesized image ``(3, h, w)`` in ``[0, 1]`` as uint8 ``(H, W, 3)`` at the mask's size.

    Quantised to 8 bits at the model size first and resized in uint8 (antialiased bilinear), so memory grows by
    3 bytes a pixel, not the 12 of a float image: an 8000x8000 mask's images are written one at a time.
    """
    small = (image.float().cpu() * 255).round().clamp(0, 255).to(torch.uint8)[None]
    if tuple(small.shape[-2:]) != tuple(size):
        small = F.interpolate(small.contiguous(memory_format=torch.channels_last), size=size, mode="bilinear",
                              antialias=True, align_corners=False)
    return np.ascontiguousarray(small[0].permute(1, 2, 0).numpy())


# ---------------------------------------------------------------------------------------------- reading inputs
def model_batch(images: list[torch.Tensor], pipe: Segmenter) -> torch.Tensor:
    """uint8 images ``(3, H, W)`` of any sizes to one batch ``(B, 3, h, w)`` in ``[0, 1]`` at the model size, on
    the model's device (the pixels ``segment`` and the app both give the model)."""
    device = next(pipe.parameters()).device
    return torch.stack([resize_image(image.float() / 255.0, pipe.size) for image in images]).to(device)


def read_index_mask(path: Path, pipe: Segmenter) -> torch.Tensor:
    """A mask's classes ``(H, W)``: a class-index mask as stored (uint8, or int32 for 16-bit files: no int64 copy
    of a large mask), or a colour mask in the model's class colours or its pseudo-mask colours, as the app reads
    them (:func:`semflow.rendering.mask_labels`)."""
    array = read_mask(path)
    if array.ndim != 2:
        return mask_labels(array, pipe, str(path), hint="Use the model's class colours (the app's legend, "
                           "NAME_vis.png) or its pseudo-mask colours (NAME_color.png), or a class-index PNG")
    return torch.from_numpy(np.array(array, dtype=np.uint8 if array.dtype == np.uint8 else np.int32))


def label_values(label: torch.Tensor) -> torch.Tensor:
    """The distinct values of a mask, int64. uint8 masks by counting (``torch.unique`` sorts a copy: 1.1 GB more
    for an 8000x8000 mask)."""
    if label.dtype == torch.uint8:
        return torch.bincount(label.flatten(), minlength=256).nonzero().flatten()
    return torch.unique(label).long()


def reference_colors(pipe: Segmenter, path: Path) -> torch.Tensor:
    """The class colours ``(1, K + 1, C)`` of the photo at ``path``, segmented by ``pipe`` in one step."""
    if getattr(pipe.config, "image_source", None) != "class-means":
        raise SemflowInputError(f"--colors-from needs a model trained with model.image_source=class-means; {path} "
                                "cannot colour this one's syntheses")
    image = read_image(path).float()[None] / 255.0
    return pipe.scene_colors(image, steps=1)  # type: ignore[attr-defined]


def seeded_generators(seed: int, indices: Iterable[int]) -> list[torch.Generator]:
    """The generator of each mask: seeded by ``(seed, index)``, the mask's position in the sorted input list, so
    its images do not depend on the batch or the number of processes."""
    return [make_generator(seed, index) for index in indices]


# ---------------------------------------------------------------------------------------------- the runs
@dataclass
class FilesRun:
    """What a run over files did: ``inputs`` in all, ``mine`` of them by this process, written to ``out`` with
    ``solver`` (segmentation: the one the model's default resolved to)."""

    inputs: int
    mine: int
    out: Path
    solver: str | None = None


def _run_batches(out: Path, outputs: list[list[Path]], share: list[int], batch_size: int, processes: Processes,
                 progress: Progress | None, write_batch: Callable[[int, list[int], list[int]], None],
                 what: str) -> None:
    """Call ``write_batch(start, indices, done)`` for each batch of this process's ``share`` under the folder's
    lock (``done[0]``: the inputs whose outputs are all written); on a failed write, remove the outputs of the
    input being written and say how many were written."""
    done = [0]
    steps: Iterable[int] = range(0, len(share), batch_size)
    with FolderLock(out) if processes.is_main_process else contextlib.nullcontext():
        try:
            for start in (progress or (lambda it: it))(steps):
                write_batch(start, share[start:start + batch_size], done)
        except OSError as err:
            current = outputs[share[done[0]]] if done[0] < len(share) else []
            for path in current:
                path.unlink(missing_ok=True)  # the input being written: all of its outputs or none
            where = err.filename or (current[0] if current else out)
            raise SemflowOutputError(f"cannot write {where} ({err.strerror or err}); the {what} of {done[0]} of "
                                     f"{len(share)} {'image' if what == 'outputs' else 'mask'}(s) were written, "
                                     "the others were not") from None
    processes.wait_for_everyone()


def segment_files(pipe: Segmenter, paths: list[Path], out: Path, steps: int = 25, solver: str | None = None,
                  batch_size: int = 16, processes: Processes | None = None,
                  prepare: Callable[[Segmenter], ContextManager] | None = None,
                  progress: Progress | None = None) -> FilesRun:
    """Segment image files into ``out`` (:func:`segmentation_names` for each).

    Args:
        pipe: a model that segments (``can_segment``), on its device, in eval mode.
        paths: the images (sorted as listed: :func:`semflow.io.list_images`).
        steps, solver: the solve (``solver`` default: the model's own).
        processes: the processes the inputs are split over (default: this one alone).
        prepare: applied to the model once the inputs are checked; returns the context to run it in.
        progress: wraps the batch loop (a progress bar).

    Raises:
        SemflowInputError: bad input (an unreadable image, a solver the model lacks, colliding outputs), before
            anything is written.
        SemflowOutputError: a write failed; whole images only are left.
    """
    processes = processes or Processes()
    out = check_output_folder(out)
    if not pipe.can_segment:
        raise SemflowInputError(f"a {pipe.method} model only synthesizes; segmentation needs a model that segments")
    solver = pipe.check_solver(solver)
    outputs = plan_outputs(paths, lambda p: segmentation_names(p.stem, pipe.dataset.colors is not None), out)
    share = processes.share(len(paths))
    images, error = [], None
    try:
        images = [read_image(paths[i]) for i in share]  # every input is checked before anything is written
    except SemflowInputError as err:
        error = err
    processes.stop_if_any_failed(error)
    precision = prepare(pipe) if prepare is not None else contextlib.nullcontext()

    def write_batch(start: int, indices: list[int], done: list[int]) -> None:
        chunk = images[start:start + len(indices)]
        with precision:
            result = pipe.segment(model_batch(chunk, pipe), steps=steps, solver=solver)
        for i, (image, index) in enumerate(zip(chunk, indices)):
            labels = resize_label(result.labels[i].cpu(), tuple(image.shape[-2:]))
            write_segmentation(out, paths[index].stem, labels, result.pseudo_mask[i], pipe)
            done[0] += 1

    _run_batches(out, outputs, share, batch_size, processes, progress, write_batch, "outputs")
    return FilesRun(inputs=len(paths), mine=len(share), out=out, solver=solver)


def synthesize_files(pipe: Segmenter, paths: list[Path], out: Path, steps: int = 25, samples: int = 1, seed: int = 0,
                     solver: str | None = None, colors_from: Path | None = None, options: dict | None = None,
                     batch_size: int = 8,
                     processes: Processes | None = None, prepare: Callable[[Segmenter], ContextManager] | None = None,
                     progress: Progress | None = None) -> FilesRun:
    """Synthesize ``samples`` images for each class-index mask file into ``out`` (:func:`synthesis_names`), at the
    mask's size. Mask ``i`` (its position in ``paths``) draws from :func:`seeded_generators` ``(seed, i)``: the same
    images whatever ``batch_size`` and the number of processes.

    Args:
        pipe: a model that synthesizes (``can_synthesize``), on its device, in eval mode.
        colors_from: a photo whose class colours paint every mask (``model.image_source=class-means``).
        options: further keyword arguments of the model's ``synthesize`` (a noise-flow model's ``guidance``).
        Others as :func:`segment_files`.
    """
    processes = processes or Processes()
    out = check_output_folder(out)
    if not pipe.can_synthesize:
        raise SemflowInputError(f"a {pipe.method} model only segments; synthesis needs a model that synthesizes")
    if not 1 <= samples <= MAX_SAMPLES:
        raise SemflowInputError(f"samples={samples}; expected 1 to {MAX_SAMPLES} images per mask")
    share = processes.share(len(paths))
    outputs = plan_outputs(paths, lambda p: synthesis_names(p.stem, samples), out)
    labels, colors, error = [], None, None
    try:
        for index in share:  # every mask is checked before anything is written
            label = read_index_mask(paths[index], pipe)
            try:
                pipe.palette.encode(label_values(label)[None])  # the values, not a float copy of the mask
            except SemflowInputError as err:
                raise SemflowInputError(f"{paths[index]}: {err}") from None
            labels.append(label)
        if colors_from is not None:
            colors = reference_colors(pipe, colors_from)
    except SemflowInputError as err:
        error = err
    processes.stop_if_any_failed(error)
    precision = prepare(pipe) if prepare is not None else contextlib.nullcontext()

    def write_batch(start: int, indices: list[int], done: list[int]) -> None:
        chunk = labels[start:start + len(indices)]
        batch = torch.stack([resize_label(label, pipe.size) for label in chunk])
        with precision:
            extra = {**(options or {}), **({"colors": colors} if colors is not None else {})}
            result = pipe.synthesize(batch, steps=steps, samples=samples, solver=solver,  # type: ignore[attr-defined]
                                     generator=seeded_generators(seed, indices), **extra)
        for i, (label, index) in enumerate(zip(chunk, indices)):
            # Back to the mask's own size, so images and masks line up; one image at a time.
            for k, path in enumerate(outputs[index]):
                write_image(to_mask_size(result.images[i, k], tuple(label.shape)), path)
            done[0] += 1

    _run_batches(out, outputs, share, batch_size, processes, progress, write_batch, "images")
    return FilesRun(inputs=len(paths), mine=len(share), out=out)

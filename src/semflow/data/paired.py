"""Data sets made of image/mask file pairs: the shared machinery behind every on-disk layout.

A layout module (``camvid``, ``cocostuff``, ...) only finds the pairs of a split and says how stored mask
values become labels; :func:`open_pairs` and :class:`PairedDataset` do the rest the same way for all of them.

Checking bad input, and what it costs
-------------------------------------
* On open, always (cheap: directory listings and list files, no image is read): every listed pair exists,
  every image has a mask and every mask an image, the split is not empty.
* On access, always (``ds[i]``): the files decode, image and mask have the same size, every stored mask value
  is defined by the data set (or, for colour masks, every colour is near a listed one). A failure raises
  :class:`~semflow.errors.SemflowInputError` naming the file and the value.
* With ``skip_bad=True``, opening also scans every pair (:meth:`PairedDataset.scan`: image header, full mask
  decode), so that bad pairs are left out *before* training rather than stopping it; this reads every mask once
  (about 2 ms per COCO mask). Left-out files are listed in ``bad_files`` as ``(path, reason)``; nothing is
  dropped without being listed. An image whose header is fine but whose body is corrupt is only found when it
  is decoded, and then it stops with an error, with or without ``skip_bad``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from semflow.data.base import DatasetInfo, Sample, SegmentationDataset
from semflow.io import image_size, read_mask, read_rgb, write_text
from semflow.errors import SemflowInputError

log = logging.getLogger(__name__)

# A stored mask (as read by read_mask) and its path -> int64 labels (H, W); raises SemflowInputError.
MaskDecoder = Callable[[np.ndarray, Path], np.ndarray]
# (path of the offending file, one-line message naming it and what is wrong)
BadFile = tuple[str, str]


@dataclass(frozen=True)
class Pair:
    """One sample on disk: ``name`` (unique in the split, used for output files), image and mask paths."""

    name: str
    image: Path
    mask: Path


class PairedDataset(SegmentationDataset):
    """A split of image/mask file pairs, decoded on access.

    Args:
        info: the data set's classes, ignore index and colours.
        split: split name.
        pairs: the split's pairs, in a fixed order.
        decode: stored mask values to labels (a :class:`~semflow.data.labelmap.LabelMap`, a colour table, ...);
            must be picklable so that DataLoader workers can use it.
        bad_files: pairs already left out while opening, as ``(path, reason)``.
    """

    def __init__(
        self,
        info: DatasetInfo,
        split: str,
        pairs: Sequence[Pair],
        decode: MaskDecoder,
        bad_files: Sequence[BadFile] = (),
    ) -> None:
        self.info = info
        self.split = split
        self.pairs = list(pairs)
        self.decode = decode
        self.bad_files: list[BadFile] = list(bad_files)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> Sample:
        """The pair at ``index``: image uint8 ``(3, H, W)`` in ``[0, 255]``, label int64 ``(H, W)``."""
        pair = self.pairs[index]
        image = read_rgb(pair.image)
        label = self.decode(read_mask(pair.mask), pair.mask)
        if image.shape[:2] != label.shape:
            raise SemflowInputError(_size_message(self.info.name, pair, image.shape[:2], label.shape))
        return Sample(
            image=torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
            label=torch.from_numpy(label),
            name=pair.name,
        )

    def check(self, index: int) -> BadFile | None:
        """Check one pair without decoding its image (header only); ``None`` if it is fine."""
        pair = self.pairs[index]
        try:
            size = image_size(pair.image)
        except SemflowInputError as err:
            return str(pair.image), str(err)
        try:
            label = self.decode(read_mask(pair.mask), pair.mask)
        except SemflowInputError as err:
            return str(pair.mask), str(err)
        if size != label.shape:
            return str(pair.mask), _size_message(self.info.name, pair, size, label.shape)
        return None

    def scan(self, workers: int = 2, progress: Callable[[int], None] | None = None) -> list[BadFile]:
        """Check every pair (:meth:`check`), in ``workers`` threads (Pillow decodes without the GIL).

        Args:
            workers: threads to use.
            progress: called with the number of pairs just checked (for a progress bar).

        Returns:
            ``(path, reason)`` of every bad pair, in the split's order.
        """
        bad: list[BadFile] = []
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for result in pool.map(self.check, range(len(self.pairs)), chunksize=16):
                if result is not None:
                    bad.append(result)
                if progress is not None:
                    progress(1)
        return bad


def _size_message(name: str, pair: Pair, image_hw: tuple[int, ...], mask_hw: tuple[int, ...]) -> str:
    return (
        f"{name}: image {pair.image} is {image_hw[1]}x{image_hw[0]} (WxH) but its mask {pair.mask} is "
        f"{mask_hw[1]}x{mask_hw[0]}; expected the same size"
    )


def open_pairs(
    info: DatasetInfo,
    split: str,
    pairs: Sequence[Pair],
    decode: MaskDecoder,
    problems: Sequence[BadFile] = (),
    skip_bad: bool = False,
    source: str = "",
) -> PairedDataset:
    """Make a :class:`PairedDataset`, applying the bad-input policy of this module's docstring.

    Args:
        info, split, pairs, decode: as for :class:`PairedDataset`; ``pairs`` are the complete pairs found.
        problems: ``(path, reason)`` found while listing (missing partner, unlisted file, ...).
        skip_bad: leave bad pairs out and list them in ``bad_files`` instead of raising on the first one;
            also scans every pair (see the module docstring).
        source: where the split was read from (a folder or list file), for the empty-split message.

    Raises:
        SemflowInputError: the first problem (without ``skip_bad``), or an empty split.
    """
    if problems and not skip_bad:
        raise SemflowInputError(problems[0][1] + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
    dataset = PairedDataset(info, split, pairs, decode, bad_files=problems)
    if skip_bad and dataset.pairs:
        scanned = dataset.scan()
        if scanned:
            bad_paths = {path for path, _ in scanned}
            dataset.pairs = [p for p in dataset.pairs if str(p.image) not in bad_paths and str(p.mask) not in bad_paths]
            dataset.bad_files.extend(scanned)
    if dataset.bad_files:
        log.warning("%s: left out %d bad file(s) of split %r", info.name, len(dataset.bad_files), split)
    if not dataset.pairs:
        raise SemflowInputError(
            f"{info.name}: split {split!r} is empty" + (f" in {source}" if source else "")
            + (f" after leaving out {len(dataset.bad_files)} bad file(s)" if dataset.bad_files else "")
        )
    return dataset


def write_bad_files(bad_files: Sequence[BadFile], path: str | Path) -> None:
    """Write ``(path, reason)`` rows as a tab-separated file with a header, atomically."""
    lines = ["path\treason"] + [f"{p}\t{reason}" for p, reason in bad_files]
    write_text("\n".join(lines) + "\n", path)


#: Where ``train`` and ``evaluate`` list the pairs ``skip_bad`` left out.
BAD_FILES = "bad_files.tsv"


def report_bad_files(dataset: SegmentationDataset, path: Path, main_process: bool = True) -> None:
    """With ``skip_bad``: warn on stderr with the count and list the left-out files in ``path``."""
    import sys

    bad = list(getattr(dataset, "bad_files", []))
    if bad and main_process:
        write_bad_files(bad, path)
        print(f"warning: {len(bad)} bad file(s) left out of {dataset.info.name}/{dataset.split}; listed in {path}",
              file=sys.stderr)



def read_list_file(dataset: str, path: Path) -> list[str]:
    """Non-empty, stripped lines of a split list (``metas/train.txt``, ``train.txt``); ``#`` starts a comment."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SemflowInputError(f"{dataset}: split list {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as err:
        raise SemflowInputError(f"{dataset}: cannot read split list {path}: {err}") from None
    return [line.split("#", 1)[0].strip() for line in text.splitlines() if line.split("#", 1)[0].strip()]


class FolderListing:
    """Names of the files in folders, each folder listed once (one ``os.scandir`` instead of a ``stat`` a file)."""

    def __init__(self) -> None:
        self._names: dict[Path, frozenset[str]] = {}

    def exists(self, path: Path) -> bool:
        folder = path.parent
        if folder not in self._names:
            try:
                self._names[folder] = frozenset(e.name for e in os.scandir(folder) if not e.is_dir())
            except (FileNotFoundError, NotADirectoryError):
                self._names[folder] = frozenset()
        return path.name in self._names[folder]


def match_listed(
    dataset: str,
    keys: Sequence[str],
    image_of: Callable[[str], Path],
    mask_of: Callable[[str], Path],
    list_file: Path,
    name_of: Callable[[str], str] = lambda key: key,
) -> tuple[list[Pair], list[BadFile]]:
    """Pairs for the keys of a split list; a key listed twice or missing a file is a problem.

    Args:
        dataset: data set name, for messages.
        keys: the list's entries (for example COCO ids, or ``city/frame`` for Cityscapes).
        image_of, mask_of: the image and mask path of a key.
        list_file: the list the keys come from, named in messages.
        name_of: the sample name of a key (default: the key).
    """
    listing = FolderListing()
    pairs: list[Pair] = []
    problems: list[BadFile] = []
    seen: set[str] = set()
    for key in keys:
        image, mask = image_of(key), mask_of(key)
        if key in seen:
            problems.append((str(list_file), f"{dataset}: {list_file} lists {key!r} twice"))
            continue
        seen.add(key)
        missing = [p for p in (image, mask) if not listing.exists(p)]
        for path in missing:
            what = "image" if path == image else "mask"
            problems.append((str(path), f"{dataset}: {list_file} lists {key!r} but its {what} {path} does not exist"))
        if not missing:
            pairs.append(Pair(name=name_of(key), image=image, mask=mask))
    return pairs, problems


def match_keys(
    dataset: str,
    images: dict[str, Path],
    masks: dict[str, Path],
    image_dir: Path,
    mask_dir: Path,
    name_of: Callable[[str], str] = lambda key: key,
) -> tuple[list[Pair], list[BadFile]]:
    """Pair images and masks found by listing folders, by key (usually the file stem), in sorted key order.

    An image without a mask, or a mask without an image, is a problem (never silently skipped).
    """
    pairs: list[Pair] = []
    problems: list[BadFile] = []
    for key in sorted(images.keys() | masks.keys()):
        if key not in masks:
            problems.append((str(images[key]), f"{dataset}: image {images[key]} has no mask {key!r} in {mask_dir}"))
        elif key not in images:
            problems.append((str(masks[key]), f"{dataset}: mask {masks[key]} has no image {key!r} in {image_dir}"))
        else:
            pairs.append(Pair(name=name_of(key), image=images[key], mask=masks[key]))
    return pairs, problems

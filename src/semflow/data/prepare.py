"""Preparation steps the SemFlow authors left to users: from official downloads to the layouts we read.

* :func:`prepare_celebamask_hq` — the official CelebAMask-HQ download to the authors' layout: 512px images,
  merged 19-class masks ("mergemask") and ``metas/`` with the official train/val/test split.
* :func:`write_metas` — ``metas/SPLIT.txt`` for a COCO-Stuff or Cityscapes folder, from its files, after
  checking that every image has its mask (and, with ``check=True``, that every mask decodes to known labels).

Every file is written under a temporary name and renamed, so an interrupted run leaves only whole files; the
``metas/`` lists are written last, so a half-prepared folder cannot be opened as a data set. Rerunning
:func:`prepare_celebamask_hq` continues where it stopped (existing outputs are kept).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from semflow.data import celebamask, cityscapes, cocostuff
from semflow.io import read_rgb, write_image, write_text
from semflow.data.paired import BadFile, Pair, PairedDataset, match_keys
from semflow.errors import SemflowInputError

Progress = Callable[[int], None]

# The official CelebA partition (list_eval_partition.txt), applied to CelebAMask-HQ through the orig_idx column
# of CelebA-HQ-to-CelebA-mapping.txt with the thresholds of the CelebAMask-HQ release's own split script:
# orig_idx < 162771 train, < 182638 val, else test (commonly reported as 24183 / 2993 / 2824 faces).
CELEBA_VAL_START = 162771
CELEBA_TEST_START = 182638
_PART_FILE = re.compile(r"^(\d+)_([a-z_]+)\.png$")


@dataclass
class PrepareReport:
    """What a preparation step did: output folder, samples per split, and files left out (``skip_bad``)."""

    out: Path
    counts: dict[str, int] = field(default_factory=dict)
    bad_files: list[BadFile] = field(default_factory=list)


def _raise_or_keep(problems: list[BadFile], skip_bad: bool) -> None:
    if problems and not skip_bad:
        more = f" (and {len(problems) - 1} more; --skip-bad leaves them out and lists them)" if len(problems) > 1 else ""
        raise SemflowInputError(problems[0][1] + more)


# ----------------------------------------------------------------------------------------------------------
# CelebAMask-HQ


def celebamask_split(orig_idx: int) -> str:
    """Split of a CelebAMask-HQ image from its CelebA index (``orig_idx`` of the mapping file)."""
    if orig_idx < CELEBA_VAL_START:
        return "train"
    return "val" if orig_idx < CELEBA_TEST_START else "test"


def read_celeba_mapping(path: Path) -> dict[int, int]:
    """``{CelebA-HQ id: CelebA orig_idx}`` from ``CelebA-HQ-to-CelebA-mapping.txt`` (``idx orig_idx orig_file``)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise SemflowInputError(
            f"celebamask-hq: {path} does not exist; it comes with the official download and gives the train/val/test split"
        ) from None
    mapping: dict[int, int] = {}
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields or fields[0] == "idx":  # blank line or the header
            continue
        try:
            mapping[int(fields[0])] = int(fields[1])
        except (ValueError, IndexError):
            raise SemflowInputError(f"celebamask-hq: {path} line {number} is {line!r}; expected 'idx orig_idx orig_file'") from None
    return mapping


def merge_parts(parts: dict[str, Path], size: int) -> np.ndarray:
    """Merge per-part masks into one class map, as the CelebAMask-HQ release does.

    Parts are painted in :data:`semflow.data.celebamask.PARTS` order (skin first, cloth last), each over the
    earlier ones, as class ``1 + PARTS.index(part)``; unpainted pixels are background (0). A part pixel is set
    where the mask's blue channel is non-zero, which is what the release's script reads (the first channel of
    OpenCV's BGR); the official masks are black and white, so any channel gives the same.

    Args:
        parts: ``{part name: mask file}`` for the parts this face has (absent parts are simply not painted).
        size: side of the masks, pixels; a part of another size is an error.

    Returns:
        ``uint8 (size, size)`` class map in ``0..18``.
    """
    merged = np.zeros((size, size), dtype=np.uint8)
    for c, part in enumerate(celebamask.PARTS, start=1):
        if part not in parts:
            continue
        mask = read_rgb(parts[part])
        if mask.shape[:2] != (size, size):
            raise SemflowInputError(
                f"celebamask-hq: part mask {parts[part]} is {mask.shape[1]}x{mask.shape[0]}; expected {size}x{size}"
            )
        merged[mask[..., 2] != 0] = c
    return merged


def _prepare_face(job: tuple[int, Path, dict[str, Path], Path, int, int]) -> BadFile | None:
    """Write one face's resized image and merged mask; a problem instead of an exception (pool-friendly)."""
    index, image_path, parts, out, size, quality = job
    image_out = out / celebamask.IMAGE_DIR / f"{index}.jpg"
    mask_out = out / celebamask.MASK_DIR / f"{index}.png"
    if image_out.is_file() and mask_out.is_file():  # done by an earlier, interrupted run (writes are atomic)
        return None
    try:
        merged = merge_parts(parts, size)
    except SemflowInputError as err:
        culprit = next((str(p) for p in parts.values() if str(p) in str(err)), str(image_path))
        return culprit, str(err)
    try:
        with Image.open(image_path) as raw:
            # Area averaging (box filter): exact for the official 1024 -> 512 halving, no ringing.
            image = np.asarray(raw.convert("RGB").resize((size, size), Image.Resampling.BOX))
    except FileNotFoundError:
        return str(image_path), f"celebamask-hq: image {image_path} does not exist"
    except (OSError, ValueError, SyntaxError) as err:
        return str(image_path), f"celebamask-hq: cannot read image {image_path}: {err}"
    write_image(image, image_out, quality=quality)
    write_image(merged, mask_out)
    return None


def _find_raw_root(raw: Path) -> Path:
    """``RAW`` itself, or ``RAW/CelebAMask-HQ`` (the folder the official zip unpacks to)."""
    for candidate in (raw, raw / "CelebAMask-HQ"):
        if (candidate / "CelebA-HQ-img").is_dir():
            return candidate
    raise SemflowInputError(
        f"celebamask-hq: {raw} has no CelebA-HQ-img/ folder; expected the official download "
        "(CelebA-HQ-img/, CelebAMask-HQ-mask-anno/, CelebA-HQ-to-CelebA-mapping.txt)"
    )


def index_celebamask_raw(raw: Path) -> tuple[dict[int, Path], dict[int, dict[str, Path]], list[BadFile]]:
    """List the raw download: images by id, part masks by id and part, and files that fit neither."""
    problems: list[BadFile] = []
    images: dict[int, Path] = {}
    for path in sorted((raw / "CelebA-HQ-img").iterdir()):
        if path.name.startswith("."):
            continue
        if path.suffix.lower() != ".jpg" or not path.stem.isdigit():
            problems.append((str(path), f"celebamask-hq: {path} is not an image named N.jpg"))
            continue
        images[int(path.stem)] = path
    anno = raw / "CelebAMask-HQ-mask-anno"
    if not anno.is_dir():
        raise SemflowInputError(f"celebamask-hq: {anno} does not exist; expected the per-part masks <group>/<id>_<part>.png")
    parts: dict[int, dict[str, Path]] = {}
    known = set(celebamask.PARTS)
    # Official groups are 0..14 (2000 faces each), but the group does not matter: files are matched by name.
    for path in sorted(anno.rglob("*")):
        if path.name.startswith(".") or not path.is_file():
            continue
        match = _PART_FILE.match(path.name)
        if match is None or match.group(2) not in known:
            problems.append((str(path), f"celebamask-hq: {path} is not a part mask <id>_<part>.png with part in {sorted(known)}"))
            continue
        index, part = int(match.group(1)), match.group(2)
        if part in parts.setdefault(index, {}):
            problems.append((str(path), f"celebamask-hq: {path} repeats {parts[index][part]}"))
            continue
        parts[index][part] = path
    for index in sorted(images.keys() - parts.keys()):
        problems.append((str(images[index]), f"celebamask-hq: image {images[index]} has no part masks {index:05d}_<part>.png in {anno}"))
    for index in sorted(parts.keys() - images.keys()):
        some = next(iter(parts[index].values()))
        problems.append((str(some), f"celebamask-hq: part masks such as {some} have no image {index}.jpg in {raw / 'CelebA-HQ-img'}"))
    return images, parts, problems


def prepare_celebamask_hq(
    raw: str | Path,
    out: str | Path,
    size: int = 512,
    quality: int = 95,
    workers: int | None = None,
    skip_bad: bool = False,
    progress: Progress | None = None,
) -> PrepareReport:
    """Make the authors' CelebAMask-HQ layout from the official download.

    Args:
        raw: the official download: ``CelebA-HQ-img/N.jpg`` (1024px), ``CelebAMask-HQ-mask-anno/<group>/
            <NNNNN>_<part>.png`` (512px, black and white) and ``CelebA-HQ-to-CelebA-mapping.txt``; or the folder
            holding the unpacked ``CelebAMask-HQ/``.
        out: output folder; gets ``CelebA-512-img/N.jpg`` (``size`` px, area-averaged, JPEG ``quality``),
            ``CelebAMask-HQ-mergemask/N.png`` (8-bit, 0..18, see :func:`merge_parts`) and
            ``metas/{train,val,test}.txt`` (the official split, see :data:`CELEBA_VAL_START`).
        size: output side, pixels; the part masks must already be this size (512 in the download).
        quality: JPEG quality of the images, 1..100.
        workers: processes (default: all CPU cores); 1 runs in this process.
        skip_bad: leave out faces with bad files and list them, instead of stopping at the first.
        progress: called with the number of faces just done.

    Returns:
        Counts per split and the files left out.
    """
    raw, out = _find_raw_root(Path(raw)), Path(out)
    mapping = read_celeba_mapping(raw / "CelebA-HQ-to-CelebA-mapping.txt")
    images, parts, problems = index_celebamask_raw(raw)
    for index in sorted(images.keys() & parts.keys()):
        if index not in mapping:
            problems.append((str(images[index]), f"celebamask-hq: image {images[index]} (id {index}) is not in the mapping file"))
    _raise_or_keep(problems, skip_bad)
    # Faces with a listing problem are already out: orphans, and ids missing from the mapping, are not in ids.
    ids = sorted(i for i in images.keys() & parts.keys() if i in mapping)
    if not ids:
        raise SemflowInputError(f"celebamask-hq: no complete face (image + part masks) in {raw}")
    jobs = [(i, images[i], parts[i], out, size, quality) for i in ids]
    failed: list[BadFile] = []
    done: list[int] = []

    def collect(results: Iterable[BadFile | None]) -> None:
        for index, result in zip(ids, results):
            if result is None:
                done.append(index)
            else:
                _raise_or_keep([result], skip_bad)
                failed.append(result)
            if progress is not None:
                progress(1)

    workers = workers or os.cpu_count() or 1
    if workers == 1:
        collect(map(_prepare_face, jobs))
    else:
        pool = ProcessPoolExecutor(workers)
        try:
            collect(pool.map(_prepare_face, jobs, chunksize=8))
        finally:
            pool.shutdown(cancel_futures=True)
    splits: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for index in done:
        splits[celebamask_split(mapping[index])].append(index)
    for split, members in splits.items():
        write_text("".join(f"{i}\n" for i in members), out / "metas" / f"{split}.txt")
    return PrepareReport(out=out, counts={s: len(m) for s, m in splits.items()}, bad_files=problems + failed)


# ----------------------------------------------------------------------------------------------------------
# metas/ for COCO-Stuff and Cityscapes


def _cocostuff_pairs(root: Path, split: str) -> tuple[list[Pair], list[BadFile]] | None:
    image_dir, mask_dir = root / f"{split}2017", root / "annotations" / f"{split}2017"
    if not image_dir.is_dir() and not mask_dir.is_dir():
        return None
    if not image_dir.is_dir() or not mask_dir.is_dir():
        missing = image_dir if not image_dir.is_dir() else mask_dir
        raise SemflowInputError(f"cocostuff: {missing} does not exist but its partner does; expected both {image_dir} and {mask_dir}")
    images = {p.stem: p for p in image_dir.iterdir() if p.suffix == ".jpg"}
    masks = {p.stem: p for p in mask_dir.iterdir() if p.suffix == ".png"}
    others = [p for d in (image_dir, mask_dir) for p in d.iterdir()
              if not p.name.startswith(".") and p.suffix not in (".jpg", ".png")]
    pairs, problems = match_keys("cocostuff", images, masks, image_dir, mask_dir)
    problems += [(str(p), f"cocostuff: {p} is neither an image ID.jpg nor a mask ID.png") for p in others]
    return pairs, problems


def _cityscapes_pairs(root: Path, split: str) -> tuple[list[Pair], list[BadFile]] | None:
    image_dir, mask_dir = root / "leftImg8bit" / split, root / "gtFine" / split
    if not image_dir.is_dir():
        return None
    images = {k: image_dir / f"{k}{cityscapes.IMAGE_SUFFIX}" for k in cityscapes.list_frames(root, split)}
    masks = {p.relative_to(mask_dir).as_posix()[: -len(cityscapes.MASK_SUFFIX)]: p
             for p in mask_dir.glob(f"*/*{cityscapes.MASK_SUFFIX}")}
    return match_keys("cityscapes", images, masks, image_dir, mask_dir)


def write_metas(
    kind: str,
    root: str | Path,
    check: bool = False,
    skip_bad: bool = False,
    workers: int = 2,
    progress: Progress | None = None,
) -> PrepareReport:
    """Write ``metas/SPLIT.txt`` (one key a line) for every split found in a COCO-Stuff or Cityscapes folder.

    Args:
        kind: ``cocostuff`` (keys are image ids; splits ``train2017``/``val2017`` with ``annotations/``) or
            ``cityscapes`` (keys are ``CITY/CITY_SEQ_FRAME``; splits under ``leftImg8bit/`` and ``gtFine/``).
        root: the data set folder; ``metas/`` is written inside it.
        check: also decode every mask and check its labels and size (reads every mask once).
        skip_bad: leave out pairs with problems (listed in the report) instead of stopping at the first.
        workers: threads for ``check``.
        progress: called with the number of pairs just checked.
    """
    root = Path(root)
    finders = {"cocostuff": (_cocostuff_pairs, cocostuff.SPLITS), "cityscapes": (_cityscapes_pairs, cityscapes.SPLITS)}
    if kind not in finders:
        raise SemflowInputError(f"prepare: no metas step for {kind!r}; expected one of {sorted(finders)}")
    if not root.is_dir():
        raise SemflowInputError(f"{kind}: {root} is not a folder")
    find, split_names = finders[kind]
    found = {s: r for s in split_names if (r := find(root, s)) is not None}
    if not found:
        raise SemflowInputError(f"{kind}: {root} holds no split folders; see 'semflow prepare {kind} --help' for the layout")
    if kind == "cocostuff":
        info, decode, key_of = cocostuff.INFO, cocostuff.LABELS, (lambda pair: pair.image.stem)
    else:
        table = cityscapes.label_table()
        info, decode = cityscapes.make_info(table), cityscapes.make_labels(table)
        key_of = lambda pair: f"{pair.image.parent.name}/{pair.image.name[: -len(cityscapes.IMAGE_SUFFIX)]}"  # noqa: E731
    report = PrepareReport(out=root / "metas")
    lists: dict[str, Sequence[Pair]] = {}
    for split, (pairs, problems) in found.items():
        _raise_or_keep(problems, skip_bad)
        if check and pairs:
            bad = PairedDataset(info, split, pairs, decode).scan(workers=workers, progress=progress)
            _raise_or_keep(bad, skip_bad)
            bad_paths = {p for p, _ in bad}
            pairs = [p for p in pairs if str(p.image) not in bad_paths and str(p.mask) not in bad_paths]
            problems = problems + bad
        if not pairs:
            raise SemflowInputError(f"{kind}: split {split!r} of {root} has no complete image/mask pair")
        report.bad_files += problems
        report.counts[split] = len(pairs)
        lists[split] = pairs
    for split, pairs in lists.items():  # only after every split passed, so a failure writes nothing
        write_text("".join(f"{key_of(p)}\n" for p in pairs), root / "metas" / f"{split}.txt")
    return report

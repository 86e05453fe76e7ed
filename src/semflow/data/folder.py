"""Users' own data: ``images/`` and ``masks/`` with matching file names, and a ``classes.json``.

Layout (``folder:PATH``), one of::

    PATH/classes.json   PATH/images/NAME.jpg        PATH/masks/NAME.png          one set, every split
    PATH/classes.json   PATH/images/train/NAME.jpg  PATH/masks/train/NAME.png    split (train/ val/ test/)
    PATH/classes.json   PATH/train/images/NAME.jpg  PATH/train/masks/NAME.png    split, the other way round

Images and masks are matched by their path below ``images/`` and ``masks/`` without the extension (nested
folders are fine; the sample name joins them with ``__``). An image without a mask or a mask without an image is
an error (or, with ``skip_bad``, listed in ``bad_files``), as is a file that is neither an image nor a mask.
Hidden files (``.DS_Store``) are not data and are passed over. A folder without ``train/ val/ test/`` serves
*every* split name from the same files (a warning says so): split it to hold data out for evaluation.

Masks are either index masks (8/16-bit grey or palette PNGs: the stored value is the class index) or colour
masks (RGB PNGs: the colour is looked up in ``classes.json``, see :mod:`semflow.data.colormask`); each file is
read as what it is, and colour masks need every class to have a colour.

``classes.json`` (or ``classes.yaml`` / ``classes.yml``; unknown keys are errors)::

    {
      "classes": [                                    # required, in class-index order
        {"name": "background", "color": [0, 0, 0]},   # or just "background" when no colours are used
        {"name": "road", "color": [128, 64, 128]}
      ],
      "ignore_index": 255,                            # optional: stored value excluded from training/scoring
      "ignore_color": [255, 255, 255],                # optional: colour of ignored pixels in colour masks
      "color_tolerance": 32                           # optional: RGB distance accepted, pixel levels
    }
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from semflow.data.base import DatasetInfo
from semflow.data.colormask import DEFAULT_TOLERANCE, ColorTable
from semflow.data.labelmap import LabelMap
from semflow.data.paired import BadFile, PairedDataset, match_keys, open_pairs
from semflow.errors import SemflowInputError
from semflow.io import IMAGE_SUFFIXES

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
IMAGE_EXTENSIONS = frozenset(IMAGE_SUFFIXES)
MASK_EXTENSIONS = frozenset({".png", ".bmp", ".tif", ".tiff"})
CLASSES_FILES = ("classes.json", "classes.yaml", "classes.yml")
_KEYS = {"classes", "ignore_index", "ignore_color", "color_tolerance"}

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class ClassesFile:
    """The content of ``classes.json``: names, optional colours, ignore index and colour, tolerance."""

    names: tuple[str, ...]
    colors: tuple[RGB, ...] | None
    ignore_index: int | None
    ignore_color: RGB | None
    color_tolerance: float


def read_classes(path: str | Path) -> ClassesFile:
    """Read and validate a ``classes.json`` / ``.yaml`` (format in the module docstring)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except FileNotFoundError:
        raise SemflowInputError(f"folder: class file {path} does not exist") from None
    except Exception as err:  # json/yaml syntax errors, undecodable bytes
        raise SemflowInputError(f"folder: cannot parse {path}: {' '.join(str(err).split())}") from None
    if not isinstance(data, dict):
        raise SemflowInputError(f"folder: {path} must hold a mapping with a 'classes' list")
    unknown = set(data) - _KEYS
    if unknown:
        raise SemflowInputError(f"folder: {path} has unknown key(s) {sorted(unknown)}; expected {sorted(_KEYS)}")
    entries = data.get("classes")
    if not isinstance(entries, list) or not entries:
        raise SemflowInputError(f"folder: {path} needs a non-empty 'classes' list of names or {{name, color}} objects")
    names: list[str] = []
    colors: list[RGB | None] = []
    for i, entry in enumerate(entries):
        if isinstance(entry, str):
            entry = {"name": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or set(entry) - {"name", "color"}:
            raise SemflowInputError(f"folder: {path} classes[{i}] = {entry!r}; expected a name or {{\"name\": ..., \"color\": [r, g, b]}}")
        names.append(entry["name"])
        colors.append(_rgb(entry["color"], f"{path} classes[{i}].color") if "color" in entry else None)
    if len(set(names)) != len(names):
        raise SemflowInputError(f"folder: {path} lists a class name twice: {sorted(n for n in set(names) if names.count(n) > 1)}")
    if any(c is None for c in colors) and any(c is not None for c in colors):
        missing = [names[i] for i, c in enumerate(colors) if c is None]
        raise SemflowInputError(f"folder: {path} gives colours to some classes but not to {missing[:5]}; give all or none")
    ignore_index = data.get("ignore_index")
    if ignore_index is not None and (not isinstance(ignore_index, int) or isinstance(ignore_index, bool)
                                     or not len(names) <= ignore_index <= 65535):
        raise SemflowInputError(
            f"folder: {path} ignore_index={ignore_index!r}; expected an integer from {len(names)} (the number of "
            "classes) to 65535, such as 255, or null"
        )
    ignore_color = _rgb(data["ignore_color"], f"{path} ignore_color") if data.get("ignore_color") is not None else None
    if ignore_color is not None and ignore_index is None:
        raise SemflowInputError(f"folder: {path} gives ignore_color but no ignore_index; set ignore_index (e.g. 255)")
    tolerance = data.get("color_tolerance", DEFAULT_TOLERANCE)
    if not isinstance(tolerance, (int, float)) or isinstance(tolerance, bool) or not 0 <= tolerance <= 442:
        raise SemflowInputError(f"folder: {path} color_tolerance={tolerance!r}; expected a number of pixel levels in 0..442")
    return ClassesFile(
        names=tuple(names),
        colors=tuple(colors) if colors[0] is not None else None,  # type: ignore[arg-type]
        ignore_index=ignore_index,
        ignore_color=ignore_color,
        color_tolerance=float(tolerance),
    )


def _rgb(value: Any, where: str) -> RGB:
    if (not isinstance(value, (list, tuple)) or len(value) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in value)):
        raise SemflowInputError(f"folder: {where} = {value!r}; expected [r, g, b] with integers 0..255")
    return (int(value[0]), int(value[1]), int(value[2]))


@dataclass(frozen=True)
class FolderMasks:
    """Index masks through ``index``, colour masks through ``colors`` (``None``: no colours listed)."""

    index: LabelMap
    colors: ColorTable | None

    def __call__(self, stored: np.ndarray, path: Path) -> np.ndarray:
        if stored.ndim == 2:
            return self.index(stored, path)
        if self.colors is None:
            raise SemflowInputError(
                f"folder: mask {path} is a colour (RGB) mask but classes.json gives no colours; add a \"color\" to "
                "every class, or store masks as 8-bit class-index PNGs"
            )
        return self.colors(stored, path)


def make_decoder(classes: ClassesFile) -> FolderMasks:
    """The mask decoder for a ``classes.json``."""
    index = LabelMap.identity("folder", len(classes.names), classes.ignore_index)
    colors = None
    if classes.colors is not None:
        listed = list(classes.colors) + ([classes.ignore_color] if classes.ignore_color is not None else [])
        labels = list(range(len(classes.names))) + ([classes.ignore_index] if classes.ignore_color is not None else [])
        names = classes.names + (("ignore",) if classes.ignore_color is not None else ())
        colors = ColorTable(np.array(listed, dtype=np.uint8), np.array(labels, dtype=np.int64), names,
                            tolerance=classes.color_tolerance)
    return FolderMasks(index=index, colors=colors)


def split_folders(root: Path) -> dict[str, tuple[Path, Path]]:
    """``{split: (image folder, mask folder)}``; a single ``{"all": ...}`` for an unsplit folder."""
    if (root / "images").is_dir():
        entries = [p for p in (root / "images").iterdir() if not p.name.startswith(".")]
        found = [s for s in SPLITS if (root / "images" / s).is_dir()]
        if found:
            others = sorted(p.name for p in entries if p.name not in found)
            if others:
                raise SemflowInputError(
                    f"folder: {root / 'images'} holds split folders {found} and also {others[:5]}; put every "
                    "image in a split folder (train/, val/, test/) or use no split folders"
                )
            return {s: (root / "images" / s, root / "masks" / s) for s in found}
        return {"all": (root / "images", root / "masks")}
    found = [s for s in SPLITS if (root / s / "images").is_dir()]
    if found:
        return {s: (root / s / "images", root / s / "masks") for s in found}
    raise SemflowInputError(
        f"folder: {root} has no images/ folder (nor train/images/, val/images/); expected images/ and masks/ "
        "with matching file names, optionally split into train/ val/ test/"
    )


def _list(folder: Path, extensions: frozenset[str], what: str) -> tuple[dict[str, Path], list[BadFile]]:
    """Files below ``folder`` by key (relative path without extension); unsupported or clashing files are problems."""
    found: dict[str, Path] = {}
    problems: list[BadFile] = []
    if not folder.is_dir():
        return found, problems
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        if path.suffix.lower() not in extensions:
            problems.append((str(path), f"folder: {path} is not a supported {what} file; expected {', '.join(sorted(extensions))}"))
            continue
        key = rel.with_suffix("").as_posix()
        if key in found:
            problems.append((str(path), f"folder: {path} and {found[key]} are two {what}s for the same name {key!r}"))
            continue
        found[key] = path
    return found, problems


def open_folder(root: str | Path, split: str = "train", skip_bad: bool = False) -> PairedDataset:
    """Open one split of a user's folder (see the module docstring)."""
    root = Path(root)
    if not root.is_dir():
        raise SemflowInputError(f"folder: {root} is not a folder; expected images/, masks/ and classes.json")
    class_file = next((root / n for n in CLASSES_FILES if (root / n).is_file()), None)
    if class_file is None:
        raise SemflowInputError(
            f"folder: {root} has no classes.json (or classes.yaml); it must list the class names, e.g. "
            '{"classes": ["background", "cat"], "ignore_index": 255}'
        )
    classes = read_classes(class_file)
    folders = split_folders(root)
    if "all" in folders:
        log.warning("folder: %s has no train/ val/ test/ split; split %r reads every file", root, split)
        image_dir, mask_dir = folders["all"]
    elif split in folders:
        image_dir, mask_dir = folders[split]
    else:
        raise SemflowInputError(f"folder: {root} has no split {split!r}; found {', '.join(folders)}")
    info = DatasetInfo(
        name="folder",
        class_names=classes.names,
        ignore_index=classes.ignore_index,
        colors=classes.colors,
        extra={"splits": list(folders)},
    )
    if not mask_dir.is_dir():
        raise SemflowInputError(f"folder: {mask_dir} does not exist; expected the masks beside {image_dir}")
    images, image_problems = _list(image_dir, IMAGE_EXTENSIONS, "image")
    masks, mask_problems = _list(mask_dir, MASK_EXTENSIONS, "mask")
    pairs, problems = match_keys("folder", images, masks, image_dir, mask_dir, name_of=lambda k: k.replace("/", "__"))
    return open_pairs(info, split, pairs, make_decoder(classes), image_problems + mask_problems + problems,
                      skip_bad, source=str(image_dir))

"""A cache of decoded, downscaled samples, so that CPU cores train instead of decoding JPEGs.

Decoding a 640x480 COCO JPEG and its mask costs about 10 ms; a CPU training step at 64x64 costs about 100 ms an
image, so every epoch spends some 15% of the cores on decoding the same files again (measured by
``bench/loader_throughput.py``; numbers in ``docs/data.md``). :class:`DecodedCache` decodes each sample once,
shrinks it (keeping its aspect) to the least size that covers what the training transform can need, and keeps
it in two memory-mapped files; reading a sample back is a copy of a few kilobytes.

What is kept: the image resized (antialiased bilinear, as :func:`semflow.data.transforms.resize_image`) so that it
still covers ``min_size * scale_max`` (the largest intermediate size of ``train_transform`` with scale up to
``scale_max``), the label resized by nearest neighbour to the same size; samples already smaller are kept as they
are. The random scale/crop of ``train_transform`` is then drawn over the same content as from the original. For
training only: evaluation scores against the original-size label, so it reads the data set itself.

The cache folder is keyed by the data set's files (paths, sizes, modification times), split and sizes: a change
to any of them builds a new cache rather than serving a stale one. Building writes a temporary folder and renames
it, so a cache is whole or absent.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from semflow.data.base import DatasetInfo, Sample, SegmentationDataset
from semflow.data.paired import PairedDataset
from semflow.data.transforms import resize_image, resize_label

FORMAT_VERSION = 1


def default_cache_root() -> Path:
    """``$SEMFLOW_CACHE``, else ``$XDG_CACHE_HOME/semflow``, else ``~/.cache/semflow``."""
    if "SEMFLOW_CACHE" in os.environ:
        return Path(os.environ["SEMFLOW_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "semflow"


def cached_size(height: int, width: int, min_size: tuple[int, int], scale_max: float) -> tuple[int, int]:
    """The smallest ``(h, w)`` with the aspect ratio of ``(height, width)`` that covers ``min_size * scale_max``.

    Never larger than the original. Pixels.
    """
    factor = max(min_size[0] * scale_max / height, min_size[1] * scale_max / width)
    if factor >= 1.0:
        return height, width
    return min(height, int(np.ceil(height * factor))), min(width, int(np.ceil(width * factor)))


def dataset_key(dataset: SegmentationDataset, min_size: tuple[int, int], scale_max: float) -> str:
    """A hash of what the cache content depends on (for paired data sets: every file's path, size and mtime)."""
    digest = hashlib.sha256()
    digest.update(json.dumps([FORMAT_VERSION, dataset.info.to_dict(), dataset.split, len(dataset),
                              list(min_size), scale_max]).encode())
    if isinstance(dataset, PairedDataset):
        for pair in dataset.pairs:
            for path in (pair.image, pair.mask):
                stat = path.stat()
                digest.update(f"{pair.name}\0{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    else:  # procedural data sets: their class and parameters decide the content
        digest.update(repr(sorted((k, repr(v)) for k, v in vars(dataset).items())).encode())
    return digest.hexdigest()[:16]


class _Shrunk(Dataset):
    """Samples shrunk for the cache: ``(name, image uint8 (3, h, w), label (h, w))``."""

    def __init__(self, dataset: SegmentationDataset, min_size: tuple[int, int], scale_max: float) -> None:
        self.dataset, self.min_size, self.scale_max = dataset, min_size, scale_max

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[str, torch.Tensor, torch.Tensor]:
        sample = self.dataset[index]
        image, label = sample["image"], sample["label"]
        size = cached_size(*image.shape[-2:], self.min_size, self.scale_max)
        if size != tuple(image.shape[-2:]):
            image = resize_image(image.float(), size).round().clamp(0, 255).to(torch.uint8)
            label = resize_label(label, size)
        return sample["name"], image, label


class DecodedCache(SegmentationDataset):
    """A data set's samples, decoded and shrunk once (see the module docstring), as a data set.

    Build or reuse one with :meth:`build`. ``ds[i]`` is a :class:`Sample` like the source's, but smaller:
    image uint8 ``(3, h, w)`` in ``[0, 255]``, label int64 ``(h, w)``.
    """

    def __init__(self, folder: Path, info: DatasetInfo, split: str) -> None:
        self.folder, self.info, self.split = folder, info, split
        meta = json.loads((folder / "meta.json").read_text())
        self.names: list[str] = meta["names"]
        self.label_dtype = np.dtype(meta["label_dtype"])
        self.index = np.load(folder / "index.npy")  # (N, 4): image offset, label offset, h, w
        self.bad_files: list[tuple[str, str]] = []
        self._images: np.ndarray | None = None  # memory maps, opened in each process on first use
        self._labels: np.ndarray | None = None

    @classmethod
    def build(
        cls,
        dataset: SegmentationDataset,
        root: str | Path | None = None,
        min_size: tuple[int, int] = (64, 64),
        scale_max: float = 1.5,
        workers: int = 2,
        progress: Callable[[int], None] | None = None,
    ) -> DecodedCache:
        """Reuse the cache of ``dataset`` under ``root``, or build it (one pass over the data).

        Args:
            dataset: the source (any data set; a :class:`PairedDataset` is keyed by its files).
            root: cache root (default :func:`default_cache_root`); the cache is ``root/NAME-SPLIT-KEY``.
            min_size: the training size ``(h, w)``, pixels.
            scale_max: the largest random scale ``train_transform`` will draw (its ``scale[1]``).
            workers: DataLoader workers decoding while building.
            progress: called with the number of samples just cached.

        Raises:
            SemflowInputError: a sample fails to decode (it names the file); nothing is cached then.
        """
        root = Path(root) if root is not None else default_cache_root()
        folder = root / f"{dataset.info.name}-{dataset.split}-{dataset_key(dataset, min_size, scale_max)}"
        if not (folder / "meta.json").is_file():
            cls._build_folder(dataset, root, folder, min_size, scale_max, workers, progress)
        cache = cls(folder, dataset.info, dataset.split)
        cache.bad_files = list(getattr(dataset, "bad_files", []))  # what the source left out, still reported
        return cache

    @classmethod
    def _build_folder(cls, dataset: SegmentationDataset, root: Path, folder: Path, min_size: tuple[int, int],
                      scale_max: float, workers: int, progress: Callable[[int], None] | None) -> None:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{folder.name}."))
        try:
            cls._write(dataset, tmp, min_size, scale_max, workers, progress)
            try:
                tmp.rename(folder)
            except OSError:  # another process finished the same cache first: use theirs
                shutil.rmtree(tmp, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    @staticmethod
    def _write(dataset: SegmentationDataset, folder: Path, min_size: tuple[int, int], scale_max: float,
               workers: int, progress: Callable[[int], None] | None) -> None:
        label_dtype = np.uint8
        ignore = dataset.info.ignore_index
        if dataset.info.num_classes > 256 or (ignore is not None and not 0 <= ignore < 256):
            label_dtype = np.int32
        loader = DataLoader(_Shrunk(dataset, min_size, scale_max), batch_size=None, num_workers=workers)
        names: list[str] = []
        index: list[tuple[int, int, int, int]] = []
        image_offset = label_offset = 0
        with open(folder / "images.bin", "wb") as images, open(folder / "labels.bin", "wb") as labels:
            for name, image, label in loader:
                h, w = label.shape
                images.write(image.numpy().tobytes())
                labels.write(label.numpy().astype(label_dtype).tobytes())
                names.append(name)
                index.append((image_offset, label_offset, h, w))
                image_offset += 3 * h * w
                label_offset += h * w
                if progress is not None:
                    progress(1)
        np.save(folder / "index.npy", np.array(index, dtype=np.int64).reshape(-1, 4))
        meta: dict[str, Any] = {"version": FORMAT_VERSION, "names": names, "label_dtype": np.dtype(label_dtype).str,
                                "min_size": list(min_size), "scale_max": scale_max}
        (folder / "meta.json").write_text(json.dumps(meta))

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_images"] = state["_labels"] = None  # each DataLoader worker maps the files itself
        return state

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> Sample:
        if not 0 <= index < len(self.names):
            raise IndexError(index)
        if self._images is None or self._labels is None:
            self._images = np.memmap(self.folder / "images.bin", dtype=np.uint8, mode="r")
            self._labels = np.memmap(self.folder / "labels.bin", dtype=self.label_dtype, mode="r")
        image_offset, label_offset, h, w = (int(v) for v in self.index[index])
        image = np.array(self._images[image_offset : image_offset + 3 * h * w]).reshape(3, h, w)
        label = np.array(self._labels[label_offset : label_offset + h * w]).reshape(h, w).astype(np.int64)
        return Sample(image=torch.from_numpy(image), label=torch.from_numpy(label), name=self.names[index])

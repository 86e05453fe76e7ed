"""``bench/camvid_folder.py`` writes a folder data set that reads back as the labels it came from."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from semflow.data import open_dataset

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "camvid_folder.py"


def _camvid(root: Path, save, random_image) -> None:
    for split in ("train", "test"):
        names = []
        for i in range(2):
            label = np.full((12, 16), (i * 5 + (split == "test")) % 11, np.uint8)
            label[:, :4] = 11  # unlabelled
            label[0, 4:] = 10
            save(root / split / f"{split}{i}.png", random_image(12, 16, i))
            save(root / f"{split}annot" / f"{split}{i}.png", label)
            names.append(f"{split}/{split}{i}.png {split}annot/{split}{i}.png")
        (root / f"{split}.txt").write_text("\n".join(names) + "\n")


def test_folder_reads_back_as_the_source_labels(tmp_path, save, random_image):
    _camvid(tmp_path / "camvid", save, random_image)
    out = tmp_path / "user"
    run = [sys.executable, str(SCRIPT), "--data", f"camvid:{tmp_path / 'camvid'}", "--out", str(out),
           "--splits", "train", "test"]
    done = subprocess.run(run, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for split in ("train", "test"):
        source, written = open_dataset(f"camvid:{tmp_path / 'camvid'}", split), open_dataset(f"folder:{out}", split)
        assert written.info.class_names == source.info.class_names and len(written) == len(source)
        by_name = {written[i]["name"]: written[i] for i in range(len(written))}
        for i in range(len(source)):
            label = source[i]["label"].clone()
            label[label == source.info.ignore_index] = written.info.ignore_index
            assert torch.equal(by_name[source[i]["name"]]["label"], label)
    again = subprocess.run(run, capture_output=True, text=True)  # an existing folder is never written into
    assert again.returncode == 2 and f"--out {out} exists" in again.stderr

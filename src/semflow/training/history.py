"""``loss.csv``: the logged steps of a run (step, loss, learning rate, elapsed seconds), kept across resumes."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from semflow.io import write_bytes

LOSS_FILE = "loss.csv"
Row = tuple[int, float, float, float]


def write_loss(path: Path, rows: list[Row]) -> None:
    """Write the rows with a header, atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["step", "loss", "lr", "elapsed_s"])
    writer.writerows(rows)
    write_bytes(buffer.getvalue().encode(), path)


def read_loss(path: Path, up_to: int) -> list[Row]:
    """The rows of ``path`` up to step ``up_to`` (none when the file is absent)."""
    if not path.is_file():
        return []
    with path.open() as f:
        rows = [(int(r["step"]), float(r["loss"]), float(r["lr"]), float(r["elapsed_s"])) for r in csv.DictReader(f)]
    return [r for r in rows if r[0] <= up_to]


def seconds_per_step(folder: Path) -> float | None:
    """Training wall-clock seconds per optimiser step of a model folder, from its ``loss.csv`` (the runs that trained
    it, across resumes); ``None`` without a log."""
    rows = read_loss(Path(folder) / LOSS_FILE, up_to=2**62)
    return rows[-1][3] / rows[-1][0] if rows and rows[-1][0] > 0 else None

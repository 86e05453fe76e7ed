"""What the speed benchmarks share: interleaved timing, the machine description and the result files.

Every ratio a benchmark reports is measured in one run, with the two sides alternating in rounds, so that a
neighbour's load on a shared machine slows both alike; the median over rounds is reported.

The benchmarks run torch on one thread unless told otherwise (``--threads``): on the project's shared 2-core
machines, two OpenMP threads were both slower and several times noisier whenever a neighbour was busy (TAEF2
encoding 16 images at 128x128: 3.1 s on one thread, 4.5-4.9 s on two), since each barrier waits for the thread
that lost its core.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def add_threads_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1; see timing.py)")


def seconds(fn: Callable[[], Any], repeat: int, clock: Callable[[], float] = time.perf_counter) -> list[float]:
    """Seconds of ``repeat`` calls of ``fn`` by ``clock``, one number per call."""
    out = []
    for _ in range(repeat):
        start = clock()
        fn()
        out.append(clock() - start)
    return out


def interleaved_samples(cases: dict[str, Callable[[], Any]], rounds: int, repeat: int = 1, warmup: int = 1,
                        clock: Callable[[], float] = time.process_time) -> dict[str, list[float]]:
    """Seconds of every call of each case, the cases taking turns ``rounds`` times (``repeat`` calls a turn),
    in reversed order every other round so that no case always follows the same one.

    The default clock is this process's CPU time: with one thread it is the work done, and a neighbour that
    takes the core away adds waiting, not CPU seconds (wall-clock ratios on the project's shared machines moved
    by +-20% from round to round; CPU-time ratios by about +-5%).
    """
    for fn in cases.values():
        seconds(fn, warmup, clock)
    samples: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            samples[name] += seconds(cases[name], repeat, clock)
    return samples


def interleaved(cases: dict[str, Callable[[], Any]], rounds: int, repeat: int = 1, warmup: int = 1,
                clock: Callable[[], float] = time.process_time) -> dict[str, float]:
    """Median seconds per call of each case, measured as :func:`interleaved_samples` does."""
    samples = interleaved_samples(cases, rounds, repeat, warmup, clock)
    return {name: statistics.median(times) for name, times in samples.items()}


def paired_ratio(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """Median, 25th and 75th percentile of ``a[i] / b[i]`` over calls made next to each other."""
    ratios = sorted(x / y for x, y in zip(a, b))
    q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
    return statistics.median(ratios), q[0], q[2]


def machine() -> dict[str, Any]:
    """CPU count, torch threads, the load average (neighbours' work), platform, torch version, GPU if any."""
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "platform": platform.platform(),
        "torch": torch.__version__,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def markdown(headers: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table; floats with 4 significant digits."""
    def cell(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write(name: str, report: dict[str, Any], out: Path | None = None) -> Path:
    """Write ``report`` (with the machine description) to ``bench/results/NAME.json``; returns the path."""
    path = out or RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine": machine(), **report}, indent=2) + "\n")
    return path

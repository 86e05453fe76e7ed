"""Loader throughput (images/s of decoding + train_transform) against one CPU training step.

    python bench/loader_throughput.py [--size 64] [--batch 16] [--images 400]

For each data set in ../shared/data (CamVid 160x120 PNGs, COCO-Stuff 640x480 JPEGs, CelebAMask 512x512 JPEGs)
and each loader setting (DataLoader with 0 and 2 workers; with and without the decoded-array cache of
:mod:`semflow.data.cache`), times how fast batches of ``train_transform``-ed samples arrive. Then times a training
step of a small diffusers UNet2DModel (block_out_channels (32, 64, 64), batch 16 at 64x64, forward + backward +
AdamW) on the CPU. Prints a table and writes ``bench/results/loader_throughput.json``.

The column that matters on a 2-core machine is ``load share``: CPU time spent loading a batch (single worker)
divided by the training step's time; a few percent means the cores train rather than decode.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from semflow.data import open_dataset
from semflow.data.base import SegmentationDataset
from semflow.data.cache import DecodedCache
from semflow.data.transforms import train_transform

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
SETS = {
    "camvid": ("camvid", "train"),
    "cocostuff-sample": ("cocostuff", "train"),
    "celebamask-sample": ("celebamask", "train"),
}


class TrainView(Dataset):
    """``train_transform`` applied to a data set, seeded by index (what a trainer's loader does).

    ``length`` items cycle over the data set, so that small sample sets give long, steady epochs.
    """

    def __init__(self, dataset: SegmentationDataset, size: tuple[int, int], length: int) -> None:
        self.dataset, self.size, self.length = dataset, size, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        generator = torch.Generator().manual_seed(index)
        return train_transform(self.dataset[index % len(self.dataset)], self.size, generator)


def loader_rate(dataset: SegmentationDataset, size: int, batch: int, workers: int, images: int) -> float:
    """Images per second through a shuffling DataLoader, not counting the first two batches (worker start-up)."""
    view = TrainView(dataset, (size, size), images + 2 * batch)
    loader = DataLoader(view, batch_size=batch, shuffle=True, num_workers=workers)
    seen, start = 0, 0.0
    for i, (x, _) in enumerate(loader):
        if i == 1:
            start, seen = time.perf_counter(), 0
        elif i > 1:
            seen += x.shape[0]
    return seen / (time.perf_counter() - start)


def train_step_seconds(size: int, batch: int, steps: int = 4) -> float:
    from diffusers import UNet2DModel

    torch.manual_seed(0)
    model = UNet2DModel(sample_size=size, in_channels=3, out_channels=3, block_out_channels=(32, 64, 64),
                        down_block_types=("DownBlock2D",) * 3, up_block_types=("UpBlock2D",) * 3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x, t = torch.randn(batch, 3, size, size), torch.rand(batch) * 1000
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        loss = (model(x, t).sample - x).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return sorted(times[1:])[len(times[1:]) // 2]  # median, without the first (allocation) step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=64, help="training size, pixels (square)")
    parser.add_argument("--batch", type=int, default=16, help="batch size")
    parser.add_argument("--images", type=int, default=400, help="images timed per setting")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads for the training step")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "loader_throughput.json")
    args = parser.parse_args()
    if not SHARED.is_dir():
        raise SystemExit(f"needs the shared data at {SHARED}")
    torch.set_num_threads(args.threads)
    step = train_step_seconds(args.size, args.batch)
    print(f"training step (UNet2DModel (32, 64, 64), batch {args.batch} at {args.size}x{args.size}, CPU): "
          f"{step:.3f} s = {args.batch / step:.1f} images/s")
    rows = []
    header = f"{'data set':<18} {'loader':<14} {'workers':>7} {'images/s':>9} {'load share':>10}"
    print(header + "\n" + "-" * len(header))
    with tempfile.TemporaryDirectory() as cache_root:
        for label, (kind, split) in SETS.items():
            dataset = open_dataset(f"{kind}:{SHARED / label}", split)
            cached = DecodedCache.build(dataset, Path(cache_root) / label, min_size=(args.size, args.size),
                                        scale_max=1.5)
            for loader_name, ds in (("decode", dataset), ("cache", cached)):
                rates = {}
                for workers in (0, 2):
                    rates[workers] = loader_rate(ds, args.size, args.batch, workers, args.images)
                    share = (args.batch / rates[0]) / step  # CPU time of one worker per batch / step time
                    rows.append({"data": label, "loader": loader_name, "workers": workers,
                                 "images_per_s": round(rates[workers], 1), "load_share_of_step": round(share, 4)})
                    print(f"{label:<18} {loader_name:<14} {workers:>7} {rates[workers]:>9.1f} {share:>9.1%}")
    result = {
        "machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "load_average_1min_at_end": round(os.getloadavg()[0], 2),
                    "platform": platform.platform(), "torch": torch.__version__},
        "size": args.size, "batch": args.batch, "train_step_s": round(step, 4),
        "train_images_per_s": round(args.batch / step, 1), "loaders": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""Which palette decodes better? Authors' (k=6, s=50) versus spread (k = ceil(C^(1/3)), s = floor(255/(k-1))).

A segmenter's output pseudo-mask is the palette colour plus an error. This measures, per class count of the
paper's data sets, the palettes' spacing and the pixel accuracy of nearest-colour decoding when Gaussian
error of standard deviation sigma (pixel levels) is added to every channel. Prints a Markdown table and
writes bench/results/palette_robustness.json.

    python bench/palette_robustness.py
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from semflow.pseudomask.palette import Palette

DATASETS = {"shapes": 5, "camvid": 11, "celebamask": 19, "cocostuff": 171}
SIGMAS = [10.0, 20.0, 30.0, 40.0]
PIXELS = 200_000


def accuracy(palette: Palette, sigma: float, generator: torch.Generator) -> float:
    labels = torch.randint(0, palette.num_classes, (1, PIXELS), generator=generator)
    rgb = palette.encode(labels)
    noisy = rgb + sigma * torch.randn(rgb.shape, generator=generator)
    return float((palette.decode(noisy) == labels).float().mean())


def main() -> None:
    g = torch.Generator().manual_seed(0)
    results = []
    for name, classes in DATASETS.items():
        for kind, palette in (("authors", Palette(classes, 6, 50)), ("spread", Palette.spread(classes))):
            row = {"data": name, "classes": classes, "palette": kind, "k": palette.k, "s": palette.s,
                   "accuracy": {str(s): accuracy(palette, s, g) for s in SIGMAS}}
            results.append(row)
    header = "| data (C) | palette | k | s (= min. distance) | " + " | ".join(f"acc. σ={s:g}" for s in SIGMAS) + " |"
    print(header)
    print("|" + "---|" * (4 + len(SIGMAS)))
    for r in results:
        accs = " | ".join(f"{r['accuracy'][str(s)]:.3f}" for s in SIGMAS)
        print(f"| {r['data']} ({r['classes']}) | {r['palette']} | {r['k']} | {r['s']} | {accs} |")
    out = Path(__file__).parent / "results" / "palette_robustness.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

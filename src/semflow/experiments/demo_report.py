"""The demo's HTML report: image/mask grids, a segmentation trajectory, the mIoU-versus-steps plot."""

from __future__ import annotations

import html
import io
from pathlib import Path
from typing import Any

import numpy as np
import torch

from semflow.data.base import SegmentationDataset
from semflow.io import write_bytes, write_image
from semflow.models.semflow import SemFlowPipeline
from semflow.rendering import colorize

SAMPLES_PER_MASK = 4
GRID_ROWS = 4
TRAJECTORY_STEPS = 10


def to_rgb(image: torch.Tensor) -> np.ndarray:
    """Float ``(3, H, W)`` in ``[0, 1]`` to uint8 ``(H, W, 3)``."""
    return np.ascontiguousarray((image.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy())


def levels_to_rgb(pseudo: torch.Tensor) -> np.ndarray:
    """Pseudo-mask levels ``(3, H, W)`` to uint8 ``(H, W, 3)``."""
    return np.ascontiguousarray(pseudo.round().clamp(0, 255).byte().permute(1, 2, 0).cpu().numpy())


def solver_name(metrics: dict[str, Any]) -> str:
    """The segmentation solver of ``metrics`` as a reader sees it (``Euler``, ``Snap``, ...)."""
    return str(metrics.get("solver") or "euler").capitalize()


def plot_miou(metrics: dict[str, Any], path: Path) -> None:
    """mIoU versus solver steps, saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [int(n) for n in metrics["miou"]]
    fig, ax = plt.subplots(figsize=(4.5, 3.2), dpi=120)
    ax.plot(steps, [metrics["miou"][str(n)] for n in steps], "o-", label=f"SemFlow ({solver_name(metrics)})")
    ax.set_xscale("log")
    ax.set_xticks(steps, [str(n) for n in steps])
    ax.set_xlabel(f"{solver_name(metrics)} steps N")
    ax.set_ylabel("mIoU")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    write_bytes(buffer.getvalue(), path)


def _energy_rows(synthesis: dict[str, Any]) -> str:
    """The high-frequency energy rows of the synthesis table (absent from metrics written before they existed)."""
    if synthesis.get("hf_energy") is None:
        return ""
    ratio = synthesis.get("hf_ratio")
    return (f"<tr><td>high-frequency energy: mean absolute Laplacian per image ([0, 1] scale), samples / real "
            f"images of the same masks</td><td>{synthesis['hf_energy']:.4f} / {synthesis['hf_energy_real']:.4f}</td></tr>"
            f"<tr><td>texture ratio: the samples' high-frequency energy over the real images' (1: as textured as "
            f"real; 0: flat)</td><td>{'-' if ratio is None else f'{ratio:.3f}'}</td></tr>")


def _eta_row(synthesis: dict[str, Any]) -> str:
    """The row of the synthesis eta the model ran with."""
    return ("<tr><td>eta: the share of the source noise redrawn at every step (0: the ODE; with "
            "model.match_texture, chosen after training so that samples of training masks carry their images' "
            f"texture)</td><td>{synthesis['eta']:g}</td></tr>")


def _img(src: str, title: str = "") -> str:
    return f'<figure><img src="{html.escape(src)}"><figcaption>{html.escape(title)}</figcaption></figure>'


def write_report(out: Path, pipe: SemFlowPipeline, dataset: SegmentationDataset, metrics: dict[str, Any],
                 seed: int = 0) -> Path:
    """Write ``out/index.html`` and its pictures under ``out/images/``; returns the HTML path."""
    images_dir = out / "images"
    device = next(pipe.parameters()).device
    samples = [dataset[i] for i in range(min(GRID_ROWS, len(dataset)))]
    images = torch.stack([s["image"] for s in samples]).float().div(255).to(device)
    labels = torch.stack([s["label"] for s in samples])
    seg1 = pipe.segment(images, steps=1).labels.cpu()
    seg25 = pipe.segment(images, steps=25).labels.cpu()
    synth = pipe.synthesize(labels, steps=25, samples=SAMPLES_PER_MASK, seed=seed).images.cpu()

    rows = []
    for i, sample in enumerate(samples):
        name = sample["name"]
        cells = []
        # The mask and its segmentations, then the real image of the mask beside the images synthesized from it.
        for suffix, array, title in (
            ("label", colorize(labels[i], pipe), "ground truth"),
            ("seg1", colorize(seg1[i], pipe), "segmented, 1 step"),
            ("seg25", colorize(seg25[i], pipe), "segmented, 25 steps"),
            ("image", to_rgb(images[i]), "real image"),
        ):
            write_image(array, images_dir / f"{name}_{suffix}.png")
            cells.append(_img(f"images/{name}_{suffix}.png", title))
        for k in range(SAMPLES_PER_MASK):
            write_image(to_rgb(synth[i, k]), images_dir / f"{name}_synth{k}.png")
            cells.append(_img(f"images/{name}_synth{k}.png", f"synthesized #{k}"))
        rows.append('<div class="row">' + "".join(cells) + "</div>")

    trajectory = pipe.segment(images[:1], steps=TRAJECTORY_STEPS, return_trajectory=True).trajectory
    strip = []
    for j, frame in enumerate(trajectory[:, 0]):  # type: ignore[index]
        write_image(levels_to_rgb(frame), images_dir / f"trajectory_{j:02d}.png")
        strip.append(_img(f"images/trajectory_{j:02d}.png", f"t = {j / TRAJECTORY_STEPS:.1f}"))

    plot_miou(metrics, out / "miou_vs_steps.png")
    table = "".join(
        f"<tr><td>{n}</td><td>{metrics['miou'][n]:.3f}</td><td>{metrics['pixel_accuracy'][n]:.3f}</td></tr>"
        for n in metrics["miou"]
    )
    per_class = metrics["per_class_iou"][max(metrics["per_class_iou"], key=int)]
    class_rows = "".join(
        f"<tr><td>{html.escape(c)}</td><td>{'-' if v is None else f'{v:.3f}'}</td></tr>" for c, v in per_class.items()
    )
    train = metrics.get("train", {})
    synthesis = metrics.get("synthesis")
    synthesis_html = "" if not synthesis else (
        f"<h2>Synthesis: {synthesis['samples']} images for each of {synthesis['masks']} test masks, "
        f"{synthesis['steps']} Euler steps</h2><table>"
        f"<tr><td>diversity: mean pixel L1 between two samples of one mask ([0, 1] scale)</td>"
        f"<td>{synthesis['diversity_l1']:.4f}</td></tr>"
        f"<tr><td>cycle mIoU: the model segments its own samples (1 step) against the mask they came from</td>"
        f"<td>{synthesis['cycle_miou']:.3f}</td></tr>{_energy_rows(synthesis)}{_eta_row(synthesis)}</table>")
    rival = metrics.get("rival")
    if synthesis and rival:
        def row(what: str, ours: float | None, theirs: float | None) -> str:
            cell = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
            return f"<tr><td>{what}</td><td>{cell(ours)}</td><td>{cell(theirs)}</td></tr>"

        synthesis_html += (
            f"<h3>Beside the noise-flow rival (a mask-conditioned flow from Gaussian noise, the same network, data and "
            f"{rival['train']['steps']} steps)</h3><table><tr><th></th><th>SemFlow</th><th>noise-flow</th></tr>"
            + row("mIoU of the samples segmented by this SemFlow model (SemFlow's own: the cycle)",
                  synthesis["cycle_miou"], rival["sis_miou"])
            + row("diversity (pixel L1)", synthesis["diversity_l1"], rival["diversity_l1"])
            + row("high-frequency energy over the real images'", synthesis.get("hf_ratio"), rival["hf_ratio"])
            + "</table>")
    preset_note = f" with the <code>{html.escape(str(metrics['preset']))}</code> recipe" if "preset" in metrics else ""
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>semflow demo</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; max-width: 1200px; }}
.row {{ display: flex; gap: 6px; margin-bottom: 6px; flex-wrap: wrap; }}
figure {{ margin: 0; text-align: center; font-size: 11px; }}
img {{ width: 112px; height: 112px; image-rendering: pixelated; display: block; }}
table {{ border-collapse: collapse; margin: 1em 0; }} td, th {{ border: 1px solid #ccc; padding: 3px 10px; }}
</style></head><body>
<h1>SemFlow demo</h1>
<p>One rectified flow between images (t = 0) and their pseudo-masks (t = 1), trained for {train.get('steps', '?')} steps
({train.get('seconds', 0):.0f} s) on the built-in shapes{preset_note}. Segmentation runs the flow forward from the image;
synthesis runs it backward from a freshly perturbed pseudo-mask, so one mask gives several images.</p>
<h2>Segmentation: mIoU on {metrics.get('num_images', '?')} test images</h2>
<table><tr><th>{solver_name(metrics)} steps</th><th>mIoU</th><th>pixel accuracy</th></tr>{table}</table>
<img src="miou_vs_steps.png" style="width:480px;height:auto;image-rendering:auto">
{synthesis_html}
<h2>Masks, segmentations, the real image of each mask and images synthesized from the mask</h2>
{''.join(rows)}
<h2>Segmentation trajectory (decoded state, {TRAJECTORY_STEPS} {solver_name(metrics)} steps)</h2>
<div class="row">{''.join(strip)}</div>
<h2>Per-class IoU at {max(metrics['per_class_iou'], key=int)} steps</h2>
<table><tr><th>class</th><th>IoU</th></tr>{class_rows}</table>
<p>Model folder: <code>model/</code> (load with <code>SemFlowPipeline.from_pretrained</code>). Metrics:
<code>metrics.json</code>.</p>
</body></html>
"""
    path = out / "index.html"
    write_bytes(page.encode(), path)
    return path

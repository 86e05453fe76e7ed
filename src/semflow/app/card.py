"""The model card: classes with colours, the training configuration, and the model's metrics if it has any.

Everything is read from the model folder and, for metrics, from the run folder around it (``semflow demo``
writes ``DIR/metrics.json`` beside ``DIR/model/``; ``semflow evaluate --out DIR/metrics.json`` writes the same
keys). Only JSON is read, never code.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from semflow.config import to_dict
from semflow.rendering import display_colors

if TYPE_CHECKING:
    from semflow.models.base import Segmenter

TRAIN_CONFIG_FILE = "train_config.json"  # what semflow train writes beside the model
METRICS_FILE = "metrics.json"
MAX_JSON_BYTES = 4 * 2**20  # a metrics or config file is kilobytes; a larger one is not ours


@dataclass
class ModelCard:
    """What the card shows.

    Attributes:
        method: ``semflow``, ``dsm`` or ``discriminative``.
        classes: ``(index, name, (r, g, b))`` per class, display colours.
        ignore_index: the ignore label, or ``None``.
        size: ``(H, W)`` the model runs at.
        config: the training configuration (``train_config.json``), else the model configuration.
        config_source: the file ``config`` came from.
        metrics: the parsed metrics file, or ``None``.
        metrics_source: the file ``metrics`` came from, or ``None``.
    """

    method: str
    classes: list[tuple[int, str, tuple[int, int, int]]]
    ignore_index: int | None
    size: tuple[int, int]
    config: dict[str, Any]
    config_source: str
    metrics: dict[str, Any] | None
    metrics_source: Path | None


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        if not path.is_file() or path.stat().st_size > MAX_JSON_BYTES:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # an unreadable side file leaves its part of the card empty; the model itself loaded
    return data if isinstance(data, dict) else None


def model_card(pipe: Segmenter, folder: str | Path) -> ModelCard:
    """Collect the card of the model loaded from ``folder``."""
    folder = Path(folder)
    colors = display_colors(pipe)
    classes = [(c, name, tuple(int(v) for v in colors[c])) for c, name in enumerate(pipe.dataset.class_names)]
    config = _read_json(folder / TRAIN_CONFIG_FILE)
    source = str(folder / TRAIN_CONFIG_FILE)
    if config is None:
        config, source = {"model": to_dict(pipe.config)}, "the model folder's configuration"
    metrics, metrics_source = None, None
    for candidate in (folder / METRICS_FILE, folder.parent / METRICS_FILE):
        found = _read_json(candidate)
        if found is not None and isinstance(found.get("miou"), dict):
            metrics, metrics_source = found, candidate
            break
    return ModelCard(method=pipe.method, classes=classes, ignore_index=pipe.dataset.ignore_index,
                     size=tuple(pipe.size), config=config, config_source=source, metrics=metrics,
                     metrics_source=metrics_source)


def _swatch(color: tuple[int, int, int]) -> str:
    r, g, b = color
    return (f'<span style="display:inline-block;width:1.2em;height:1.2em;vertical-align:middle;'
            f'border:1px solid #888;background:rgb({r},{g},{b})"></span>')


def classes_html(rows: list[tuple[int, str, tuple[int, int, int]]], shares: list[float] | None = None) -> str:
    """An HTML table of classes: index, colour swatch, name and, if given, share of the pixels."""
    head = "<tr><th>#</th><th>colour</th><th>class</th>" + ("<th>share</th>" if shares is not None else "") + "</tr>"
    body = []
    for i, (index, name, color) in enumerate(rows):
        share = f"<td>{100 * shares[i]:.1f}%</td>" if shares is not None else ""
        body.append(f"<tr><td>{index}</td><td>{_swatch(color)}</td><td>{html.escape(name)}</td>{share}</tr>")
    return f'<table class="semflow-legend">{head}{"".join(body)}</table>'


def card_html(card: ModelCard) -> str:
    """The card as HTML (escaped: names and values come from files)."""
    parts = [f"<h3>{html.escape(card.method)} model, {card.size[1]}x{card.size[0]} pixels, "
             f"{len(card.classes)} classes</h3>", classes_html(card.classes)]
    if card.ignore_index is not None:
        parts.append(f"<p>Ignore label: {card.ignore_index} (drawn white).</p>")
    if card.metrics is not None:
        m = card.metrics
        rows = "".join(
            f"<tr><td>{html.escape(str(n))}</td><td>{float(v):.3f}</td>"
            f"<td>{float(m.get('pixel_accuracy', {}).get(n, float('nan'))):.3f}</td></tr>"
            for n, v in m["miou"].items() if isinstance(v, (int, float))
        )
        what = ", ".join(f"{k} {html.escape(str(m[k]))}" for k in ("data", "split", "solver") if k in m)
        parts.append(f"<h4>Metrics ({html.escape(what)}; from {html.escape(str(card.metrics_source))})</h4>"
                     f"<table><tr><th>steps</th><th>mIoU</th><th>pixel accuracy</th></tr>{rows}</table>")
    else:
        parts.append(f"<p>No metrics file ({METRICS_FILE}) in the model folder or its run folder; "
                     "<code>semflow evaluate --model DIR --data SPEC --out DIR/metrics.json</code> writes one.</p>")
    config = html.escape(json.dumps(card.config, indent=2))
    parts.append(f"<h4>Training configuration (from {html.escape(card.config_source)})</h4><pre>{config}</pre>")
    return "\n".join(parts)

"""Colour masks (one RGB colour per class) to class indices, robust to anti-aliased edges.

Real colour masks are rarely exact: editors anti-alias region borders, and JPEG or resizing adds noise. A pixel
is accepted when its colour is

* within ``tolerance`` of a listed colour (it takes that colour's label), or
* on an edge: within ``tolerance`` of a blend ``(1 - a) * A + a * B`` of two listed colours ``A`` and ``B``
  that both occur (exactly) within ``edge_radius`` pixels; it takes the label of the nearer of the two.

Anything else, for example a whole region painted in a colour that ``classes.json`` does not list, is an error
that names the file, the colour and where it is. The edge rule matters: without it, the grey midpoint of a black
and a white region would be rejected; with a plain "nearest colour" rule, an unlisted grey *region* would be
silently swallowed by black or white.

Distances are Euclidean in RGB pixel levels (``[0, 255]`` per channel).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from semflow.errors import SemflowInputError

DEFAULT_TOLERANCE = 32.0  # pixel levels: covers JPEG-quality noise, far below the gaps between usual palettes.
DEFAULT_EDGE_RADIUS = 2  # pixels: anti-aliasing and bilinear resizing blend over at most 2 pixels.


@dataclass(frozen=True)
class ColorTable:
    """Listed colours and their labels.

    Args:
        colors: uint8-valued ``(K, 3)`` RGB colours in ``[0, 255]``, all different.
        labels: int ``(K,)``; the label of each colour (a class index or the ignore index).
        names: ``K`` names, for messages.
        tolerance: largest accepted distance, pixel levels.
        edge_radius: how far (pixels) an edge pixel may be from the two regions it blends.
        hint: the error's last sentence, what to do about an unknown colour.
    """

    colors: np.ndarray
    labels: np.ndarray
    names: tuple[str, ...]
    tolerance: float = DEFAULT_TOLERANCE
    edge_radius: int = DEFAULT_EDGE_RADIUS
    hint: str = "List the colour in classes.json or raise color_tolerance"

    def __post_init__(self) -> None:
        colors = np.asarray(self.colors)
        if colors.ndim != 2 or colors.shape[1] != 3 or not len(colors) == len(self.labels) == len(self.names):
            raise ValueError("ColorTable: colors (K, 3), labels (K,) and names (K) must agree")
        packed = _pack(colors.astype(np.int64))
        if len(np.unique(packed)) != len(packed):
            raise SemflowInputError("colour table lists the same colour twice; each colour must name one label")

    def __call__(self, rgb: np.ndarray, path: str | Path) -> np.ndarray:
        """Classify the pixels of a colour mask.

        Args:
            rgb: ``uint8 (H, W, 3)`` colour mask read from ``path``.
            path: the mask file, named in errors.

        Returns:
            int64 ``(H, W)`` labels (the listed colours' labels).

        Raises:
            SemflowInputError: a pixel that is neither near a listed colour nor an edge blend of two.
        """
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise SemflowInputError(f"mask {path} has shape {rgb.shape}; expected a colour mask (H, W, 3)")
        h, w, _ = rgb.shape
        colors = self.colors.astype(np.float64)
        # Few distinct colours per mask: classify each distinct colour once, then scatter back.
        unique, inverse = np.unique(_pack(rgb.reshape(-1, 3).astype(np.int64)), return_inverse=True)
        unique_rgb = _unpack(unique).astype(np.float64)
        dist = np.linalg.norm(unique_rgb[:, None, :] - colors[None, :, :], axis=2)  # (U, K)
        nearest = dist.argmin(axis=1)
        exact_u = dist[np.arange(len(unique)), nearest] <= self.tolerance
        index = nearest[inverse].reshape(h, w)  # colour-table index per pixel
        exact = exact_u[inverse].reshape(h, w)
        if not exact.all():
            index = self._resolve_edges(rgb, index, exact, path)
        return self.labels.astype(np.int64)[index]

    def _resolve_edges(self, rgb: np.ndarray, index: np.ndarray, exact: np.ndarray, path: str | Path) -> np.ndarray:
        """Give each non-exact pixel the nearer end of the best two-colour blend around it, or raise."""
        ys, xs = np.nonzero(~exact)
        x = rgb[ys, xs].astype(np.float64)  # (M, 3)
        present = np.unique(index[exact])
        # near[j] marks pixels within edge_radius of an exact pixel of colour present[j] (none: no exact pixel).
        near_m = np.zeros((0, len(ys)), dtype=bool)
        if len(present):
            regions = torch.from_numpy(np.stack([(index == k) & exact for k in present]).astype(np.float32))
            size = 2 * self.edge_radius + 1
            near = F.max_pool2d(regions[None], size, stride=1, padding=self.edge_radius)[0].numpy() > 0
            near_m = near[:, ys, xs]  # (P, M)
        best = np.full(len(ys), np.inf)
        choice = np.zeros(len(ys), dtype=np.int64)
        colors = self.colors.astype(np.float64)
        for i in range(len(present)):
            for j in range(i + 1, len(present)):
                both = near_m[i] & near_m[j]
                if not both.any():
                    continue
                a, b = colors[present[i]], colors[present[j]]
                ab = b - a
                t = np.clip((x - a) @ ab / float(ab @ ab), 0.0, 1.0)
                d = np.linalg.norm(x - (a + t[:, None] * ab), axis=1)
                better = both & (d < best)
                best[better] = d[better]
                choice[better] = np.where(t[better] < 0.5, present[i], present[j])
        ok = best <= self.tolerance
        if not ok.all():
            first = int(np.argmin(ok))
            color = tuple(int(v) for v in rgb[ys[first], xs[first]])
            k = int(np.linalg.norm(colors - np.asarray(color, dtype=np.float64), axis=1).argmin())
            gap = float(np.linalg.norm(colors[k] - color))
            raise SemflowInputError(
                f"mask {path}: colour {color} at x={int(xs[first])}, y={int(ys[first])} ({int((~ok).sum())} such "
                f"pixels) is {gap:.0f} levels from the nearest listed colour {tuple(int(v) for v in self.colors[k])} "
                f"({self.names[k]}) and is not an edge blend of two listed colours; tolerance is "
                f"{self.tolerance:g}. {self.hint}"
            )
        out = index.copy()
        out[ys, xs] = choice
        return out


def _pack(rgb: np.ndarray) -> np.ndarray:
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def _unpack(packed: np.ndarray) -> np.ndarray:
    return np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], axis=-1)

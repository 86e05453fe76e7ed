"""The page: Gradio components around :mod:`semflow.app`'s functions.

Import through :func:`import_gradio`, which first points Gradio's uploads at the app's temporary folder and
turns its analytics off (:func:`semflow.app.workspace.confine`: a demo does not call home).
:class:`Handlers` holds what each button does, as plain methods that tests call without a browser; only
:func:`build_app` lays out components.
"""

from __future__ import annotations

import html
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from semflow.app.card import card_html, classes_html, model_card
from semflow.app.segmentation import SegmentedImage, overlay, segment_image
from semflow.app.synthesis import (
    blank_canvas, canvas_size, mask_from_canvas, mask_to_canvas, segment_back, synthesize_samples,
)
from semflow.app.uploads import UploadLimits, check_canvas_image, read_image_upload, read_mask_upload, safe_stem
from semflow.app.workspace import Workspace, confine
from semflow.data.transforms import resize_label
from semflow.errors import SemflowInputError
from semflow.rendering import colorize

if TYPE_CHECKING:
    import gradio

    from semflow.models.base import Segmenter

log = logging.getLogger(__name__)

MAX_STEPS = 50
MAX_SAMPLES = 8
DEFAULT_STEPS = 25
DEFAULT_SAMPLES = 4
# Requests waiting for the model beyond the one running; more are turned away with "queue full" rather than
# held in memory.
QUEUE_SIZE = 16
# Displayed pictures are enlarged (nearest, whole factor) to at least this many pixels on their shorter side:
# a 32x32 model's output would otherwise be a smudge.
MIN_DISPLAY = 128


def import_gradio(workspace: Workspace) -> Any:
    """Gradio, imported after :func:`~semflow.app.workspace.confine` (uploads in ``workspace``, analytics off)."""
    confine(workspace)
    import gradio

    return gradio


def enlarge(picture: np.ndarray, min_side: int = MIN_DISPLAY) -> np.ndarray:
    """``(H, W, 3)`` uint8 scaled by the smallest whole factor that makes its shorter side ``>= min_side``."""
    f = max(1, -(-min_side // max(1, min(picture.shape[:2]))))
    return picture if f == 1 else picture.repeat(f, axis=0).repeat(f, axis=1)


def stack(pictures: list[np.ndarray], gap: int = 8) -> np.ndarray:
    """uint8 ``(H_i, W_i, 3)`` pictures one above the other on white, left-aligned."""
    width = max(p.shape[1] for p in pictures)
    rows = []
    for p in pictures:
        row = np.full((p.shape[0] + gap, width, 3), 255, dtype=np.uint8)
        row[: p.shape[0], : p.shape[1]] = p
        rows.append(row)
    return np.concatenate(rows)[:-gap] if gap else np.concatenate(rows)


def _path(upload: Any) -> Path:
    """A Gradio file value (a path string, or an object with ``.name``/``.path``) as a path."""
    if isinstance(upload, (str, Path)):
        return Path(upload)
    for attr in ("path", "name"):
        if isinstance(getattr(upload, attr, None), str):
            return Path(getattr(upload, attr))
    raise SemflowInputError(f"unexpected upload value {type(upload).__name__}")


class Handlers:
    """What the page's buttons do, image in and outputs out; errors are :class:`SemflowInputError`.

    Args:
        pipe: the loaded model, in eval mode.
        model_dir: its folder (for the card).
        workspace: where request files go.
        limits: the largest upload read.
    """

    def __init__(self, pipe: Segmenter, model_dir: Path, workspace: Workspace,
                 limits: UploadLimits = UploadLimits()) -> None:
        self.pipe = pipe
        self.model_dir = Path(model_dir)
        self.workspace = workspace
        self.limits = limits
        self.card = model_card(pipe, model_dir)

    # ------------------------------------------------------------------ segment
    def segment(self, uploads: list[Any] | None, steps: int, solver: str | None,
                opacity: float) -> tuple[list[SegmentedImage], list, list, str, list, list[str]]:
        """Segment uploaded images.

        Returns:
            ``(results, masks, overlays, legend_html, strips, files)``: galleries as ``(picture, caption)``
            pairs, and the paths of the files ``semflow segment`` writes, for download.
        """
        if not self.pipe.can_segment:
            raise SemflowInputError(f"a {self.pipe.method} model only synthesizes; it cannot segment images")
        paths = [_path(u) for u in (uploads or [])]
        if not paths:
            raise SemflowInputError("no image uploaded; drop one or more images (PNG, JPEG, ...) on the upload box")
        if len(paths) > self.limits.max_files:
            raise SemflowInputError(f"{len(paths)} images uploaded; the limit is {self.limits.max_files} at a time")
        images = [read_image_upload(p, self.limits) for p in paths]  # all checked before any work
        out, taken = self.workspace.new_folder(), set()
        results = [segment_image(self.pipe, image, safe_stem(p.name, taken), int(steps), solver, out)
                   for p, image in zip(paths, images)]
        return (results, self.masks(results), self.overlays(results, opacity), self.legend(results),
                stack([r.strip for r in results]), [str(f) for r in results for f in r.files])

    @staticmethod
    def masks(results: list[SegmentedImage]) -> list[tuple[np.ndarray, str]]:
        return [(enlarge(r.mask), r.name) for r in results]

    @staticmethod
    def overlays(results: list[SegmentedImage] | None, opacity: float) -> list[tuple[np.ndarray, str]]:
        """The overlays at ``opacity`` (the slider): no model call."""
        return [(enlarge(overlay(r.image, r.mask, opacity)), r.name) for r in results or []]

    def legend(self, results: list[SegmentedImage]) -> str:
        parts = []
        for r in results:
            rows = [(row.index, row.name, row.color) for row in r.legend]
            parts.append(f"<h4>{html.escape(r.name)}</h4>" + classes_html(rows, [row.share for row in r.legend]))
        return "\n".join(parts)

    # ------------------------------------------------------------------ synthesize
    def load_mask(self, upload: Any) -> tuple[dict[str, Any], torch.Tensor]:
        """An uploaded mask drawn onto the canvas; returns ``(editor value, labels)``."""
        if upload is None:
            raise SemflowInputError("no mask uploaded")
        labels = read_mask_upload(_path(upload), self.pipe, self.limits)
        picture = mask_to_canvas(labels, self.pipe)
        return {"background": picture, "layers": [], "composite": picture}, labels

    def painted_labels(self, editor: dict[str, Any] | None) -> torch.Tensor:
        """The canvas's classes (its composite image)."""
        composite = None if editor is None else editor.get("composite")
        if composite is None:
            raise SemflowInputError("the canvas is empty; paint a mask or upload one")
        return mask_from_canvas(np.asarray(composite), self.pipe)

    def synthesize(self, editor: dict[str, Any] | None, samples: int, seed: int, steps: int,
                   solver: str | None) -> tuple[dict[str, Any], list[tuple[np.ndarray, str]], np.ndarray]:
        """The canvas to ``samples`` images.

        Returns:
            ``(state for segment-back, gallery, the mask as the model reads it)``: the last is the canvas's
            classes at the model size, in display colours.
        """
        labels = self.painted_labels(editor)
        if not 1 <= int(samples) <= MAX_SAMPLES:
            raise SemflowInputError(f"samples={samples}; expected 1 to {MAX_SAMPLES}")
        images = synthesize_samples(self.pipe, labels, int(samples), int(seed), int(steps), solver)
        state = {"labels": labels, "images": images}
        read = enlarge(colorize(resize_label(labels, self.pipe.size), self.pipe))
        return state, [(enlarge(im), f"sample {k}, seed {int(seed)}") for k, im in enumerate(images)], read

    def segment_back(self, state: dict[str, Any] | None, steps: int,
                     solver: str | None) -> tuple[list[tuple[np.ndarray, str]], str]:
        """Each synthesized image segmented again and scored against the painted mask."""
        if not self.pipe.can_segment:
            raise SemflowInputError(f"a {self.pipe.method} model only synthesizes; it cannot segment its samples back")
        if not state:
            raise SemflowInputError("nothing to segment back yet; synthesize first")
        back = segment_back(self.pipe, state["images"], state["labels"], int(steps), solver)
        gallery = [(enlarge(b.mask), f"{k}: mIoU {b.miou:.2f}") for k, b in enumerate(back)]
        mean = float(np.mean([b.miou for b in back]))
        text = (f"mIoU of each sample's segmentation against the painted mask: "
                f"{', '.join(f'{b.miou:.3f}' for b in back)} (mean {mean:.3f})")
        return gallery, text


def _guard(fn: Any, gr: Any) -> Any:
    """Run ``fn``; bad input becomes a message in the page (the server stays up)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any) -> Any:
        try:
            return fn(*args)
        except SemflowInputError as err:
            raise gr.Error(str(err), duration=None, print_exception=False) from None
        except Exception as err:  # noqa: BLE001 - one broken request must not take the page down
            log.exception("semflow app: request failed")
            raise gr.Error(f"internal error: {type(err).__name__}: {err}", duration=None,
                           print_exception=False) from None

    return wrapper


def guard_decoding(editor: Any, gr: Any, limits: UploadLimits) -> None:
    """Every picture the canvas sends passes :func:`check_canvas_image` (bytes, and pixels from the header) before
    Gradio decodes it, as every upload does: Gradio's ImageEditor decodes its background, layers and composite
    itself, before the handler runs (a 400 kB PNG claiming 12000 x 12000 pixels would take 400 MB and minutes)."""
    decode = editor.convert_and_format_image

    def checked(file: Any, *args: Any, **kwargs: Any) -> Any:
        if file is not None:
            try:
                check_canvas_image(file, limits)
            except SemflowInputError as err:
                raise gr.Error(str(err), duration=None, print_exception=False) from None
        return decode(file, *args, **kwargs)

    editor.convert_and_format_image = checked


def _hex(color: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*color)


def build_app(gr: Any, handlers: Handlers, examples: list[Path] | None = None) -> gradio.Blocks:
    """Lay out the page: Segment, Synthesize and Model card tabs. ``gr`` is the module from :func:`import_gradio`."""
    pipe, card = handlers.pipe, handlers.card
    model_events = {"concurrency_id": "model", "concurrency_limit": 1}  # one model call at a time
    # PNG: the colours are the classes' exactly (Gradio's default WebP is lossy).
    gallery = {"format": "png", "columns": 2, "object_fit": "contain", "preview": False, "height": "auto"}
    with gr.Blocks(title="semflow", analytics_enabled=False) as app:
        gr.Markdown(f"# semflow: {html.escape(card.method)} model `{html.escape(str(handlers.model_dir))}`\n"
                    f"{len(card.classes)} classes, runs at {pipe.size[1]}x{pipe.size[0]} pixels.")
        with gr.Tabs():
            with gr.Tab("Segment", id="segment"):
                if pipe.can_segment:
                    _segmentation_tab(gr, handlers, model_events, gallery, examples)
                else:
                    gr.Markdown(
                        f"Segmentation is not available for this model: a **{html.escape(card.method)}** model "
                        "synthesizes images from masks only (it has no path from an image to a mask). A SemFlow "
                        "model (`semflow train --method semflow`) does both.", elem_id="seg-absent")

            with gr.Tab("Synthesize", id="synthesize"):
                if pipe.can_synthesize:
                    _synthesis_tab(gr, handlers, model_events, {**gallery, "columns": 4})
                else:
                    gr.Markdown(
                        f"Synthesis is not available for this model: a **{html.escape(card.method)}** model maps "
                        "images to masks only (it has no flow to run backwards). A SemFlow model "
                        "(`semflow train --method semflow`) does both.", elem_id="synth-absent")

            with gr.Tab("Model card", id="card"):
                gr.HTML(card_html(card), elem_id="model-card")
    return app


def _segmentation_tab(gr: Any, handlers: Handlers, model_events: dict[str, Any], gallery: dict[str, Any],
                      examples: list[Path] | None) -> None:
    pipe, card = handlers.pipe, handlers.card
    stepped = pipe.STEPPED
    with gr.Row():
        with gr.Column(scale=2):
            files = gr.File(label="Images (one or more)", file_count="multiple", file_types=["image"],
                            elem_id="seg-files")
            if examples:
                gr.Examples(examples=[[[str(p)]] for p in examples], inputs=[files],
                            label="Examples")
            steps = gr.Slider(1, MAX_STEPS, value=DEFAULT_STEPS, step=1, label="Steps",
                              visible=stepped, elem_id="seg-steps")
            solver = gr.Dropdown(list(pipe.SOLVERS), value=pipe.default_solver, label="Solver",
                                 visible=len(pipe.SOLVERS) > 1)
            if not stepped:
                gr.Markdown(f"A {html.escape(card.method)} model segments in one pass: no steps.")
            run = gr.Button("Segment", variant="primary", elem_id="seg-run")
            legend = gr.HTML(elem_id="seg-legend")
            downloads = gr.File(label="Downloads: NAME.png (class indices), NAME_color.png "
                                      "(pseudo-mask), as semflow segment writes them",
                                file_count="multiple", interactive=False, elem_id="seg-downloads")
        with gr.Column(scale=3):
            with gr.Row():
                masks = gr.Gallery(label="Mask", **gallery, elem_id="seg-masks")
                overlays = gr.Gallery(label="Overlay", **gallery, elem_id="seg-overlays")
            opacity = gr.Slider(0, 1, value=0.5, step=0.05, label="Overlay opacity",
                                elem_id="seg-opacity")
            strips = gr.Image(label="Segmentation trajectory, t = 0 (image) to 1 (mask)", format="png",
                              type="numpy", interactive=False, elem_id="seg-strips")
    results = gr.State()
    run.click(_guard(handlers.segment, gr), [files, steps, solver, opacity],
              [results, masks, overlays, legend, strips, downloads], **model_events)
    opacity.change(_guard(handlers.overlays, gr), [results, opacity], [overlays])


def _synthesis_tab(gr: Any, handlers: Handlers, model_events: dict[str, Any], gallery_options: dict[str, Any]) -> None:
    pipe, card = handlers.pipe, handlers.card
    h, w = canvas_size(pipe)
    colors = [_hex(color) for _, _, color in card.classes]
    start = blank_canvas(pipe)
    with gr.Row():
        with gr.Column():
            editor = gr.ImageEditor(
                value={"background": start, "layers": [], "composite": start}, type="numpy", image_mode="RGB",
                format="png", label="Paint a mask", canvas_size=(w, h), fixed_canvas=True, sources=(),
                transforms=(), layers=False,  # eraser=False would hide the whole toolbar (Gradio 6.31)
                brush=gr.Brush(colors=colors, default_color=colors[min(1, len(colors) - 1)], color_mode="fixed",
                               default_size=max(4, h // 12)),
                elem_id="synth-canvas")
            guard_decoding(editor, gr, handlers.limits)
            gr.HTML("<p>Brushes (class colours):</p>" + classes_html(card.classes), elem_id="synth-brushes")
            mask_file = gr.File(label="...or upload a mask (class-index or colour PNG)", file_types=["image"],
                                elem_id="synth-mask")
            with gr.Row():
                samples = gr.Slider(1, MAX_SAMPLES, value=DEFAULT_SAMPLES, step=1, label="Samples K",
                                    elem_id="synth-samples")
                seed = gr.Number(value=0, precision=0, label="Seed", elem_id="synth-seed")
            with gr.Row():  # a one-pass synthesizer (spade) has neither
                steps = gr.Slider(1, MAX_STEPS, value=DEFAULT_STEPS, step=1, label="Steps", elem_id="synth-steps",
                                  visible=bool(pipe.SOLVERS))
                solver = gr.Dropdown(list(pipe.SOLVERS), value=pipe.default_solver, label="Solver",
                                     visible=bool(pipe.SOLVERS))
            run = gr.Button("Synthesize", variant="primary", elem_id="synth-run")
        with gr.Column():
            gallery = gr.Gallery(label="Samples", **gallery_options, elem_id="synth-gallery")
            read = gr.Image(label="The mask as the model reads it (its size, class colours)", format="png",
                            type="numpy", interactive=False, height=160, elem_id="synth-read")
            # Only a model that also segments can segment its samples back (the cycle).
            back = gr.Button("Segment it back", elem_id="synth-back", visible=pipe.can_segment)
            back_gallery = gr.Gallery(label="Samples segmented back", **gallery_options,
                                      elem_id="synth-back-gallery", visible=pipe.can_segment)
            back_text = gr.Markdown(elem_id="synth-back-miou", visible=pipe.can_segment)
    state = gr.State()
    mask_file.upload(_guard(lambda f: handlers.load_mask(f)[0], gr), [mask_file], [editor])
    run.click(_guard(handlers.synthesize, gr), [editor, samples, seed, steps, solver], [state, gallery, read],
              **model_events)
    back.click(_guard(handlers.segment_back, gr), [state, steps, solver], [back_gallery, back_text], **model_events)


def serve(app: gradio.Blocks, gr: Any, host: str, port: int, limits: UploadLimits) -> None:
    """Start the server and block until interrupted. Never opens a share link or a browser."""
    app.queue(default_concurrency_limit=1, max_size=QUEUE_SIZE)
    app.launch(server_name=host, server_port=port, share=False, inbrowser=False, quiet=True,
               max_file_size=limits.max_bytes, ssr_mode=False, mcp_server=False, footer_links=[],
               show_error=True, prevent_thread_lock=False)

"""The page's handlers and layout without a browser, and the command's bad input."""

import numpy as np
import pytest
from PIL import Image

from semflow.app.uploads import UploadLimits
from semflow.app.workspace import Workspace
from semflow.cli.main import main
from semflow.errors import SemflowInputError

from .conftest import shapes_pair


@pytest.fixture
def workspace(tmp_path):
    with Workspace(root=tmp_path) as ws:
        yield ws


@pytest.fixture(scope="module")
def gr(tmp_path_factory):
    pytest.importorskip("gradio", reason="the app extra is not installed: pip install -e '.[app]'")
    import os

    from semflow.app.ui import import_gradio

    saved = dict(os.environ)  # confine() sets Gradio's and matplotlib's folders for this process
    with Workspace(root=tmp_path_factory.mktemp("gradio")) as ws:
        yield import_gradio(ws)
    os.environ.clear()
    os.environ.update(saved)


def handlers_for(pipe, folder, workspace, **limits):
    from semflow.app.ui import Handlers

    return Handlers(pipe, folder, workspace, UploadLimits(**limits))


def test_segment_returns_every_output_and_the_overlay_needs_no_model_call(pipe, semflow_dir, workspace, tmp_path,
                                                                           monkeypatch):
    image, _ = shapes_pair()
    for name in ("a.png", "b.png"):
        Image.fromarray(image).save(tmp_path / name)
    h = handlers_for(pipe, semflow_dir, workspace)
    results, masks, overlays, legend, strips, files = h.segment([str(tmp_path / "a.png"), str(tmp_path / "b.png")],
                                                                 3, "euler", 0.5)
    assert [caption for _, caption in masks] == ["a", "b"] and len(overlays) == 2
    assert masks[0][0].shape[0] >= 128  # enlarged for display, by a whole factor
    assert [f.rsplit("/", 1)[-1] for f in files] == ["a.png", "a_color.png", "a_vis.png",
                                                    "b.png", "b_color.png", "b_vis.png"]
    assert all(f.startswith(str(workspace.path)) for f in files)
    assert legend.count("<table") == 2 and strips.shape[0] > results[0].strip.shape[0]
    monkeypatch.setattr(pipe, "segment", lambda *a, **k: pytest.fail("the opacity slider ran the model"))
    opaque = h.overlays(results, 1.0)
    assert np.array_equal(opaque[0][0], masks[0][0])


def test_segment_refuses_bad_requests_with_a_message(pipe, semflow_dir, workspace, tmp_path):
    h = handlers_for(pipe, semflow_dir, workspace, max_files=1)
    with pytest.raises(SemflowInputError, match="no image uploaded"):
        h.segment([], 3, None, 0.5)
    (tmp_path / "x.png").write_bytes(b"junk")
    with pytest.raises(SemflowInputError, match="2 images uploaded; the limit is 1"):
        h.segment([str(tmp_path / "x.png")] * 2, 3, None, 0.5)
    with pytest.raises(SemflowInputError, match=r"cannot read image x\.png"):
        h.segment([str(tmp_path / "x.png")], 3, None, 0.5)


def test_synthesize_and_segment_back_from_an_uploaded_mask(pipe, semflow_dir, workspace, mask_file):
    h = handlers_for(pipe, semflow_dir, workspace)
    editor, labels = h.load_mask(str(mask_file))
    state, gallery, read = h.synthesize(editor, 3, 1, 2, "euler")
    assert len(gallery) == 3 and state["images"].shape[0] == 3 and read.shape[0] >= 128
    back, text = h.segment_back(state, 2, "euler")
    assert len(back) == 3 and text.startswith("mIoU of each sample")
    with pytest.raises(SemflowInputError, match="synthesize first"):
        h.segment_back(None, 2, "euler")
    with pytest.raises(SemflowInputError, match="samples=9; expected 1 to 8"):
        h.synthesize(editor, 9, 1, 2, "euler")


def test_page_layout_for_each_model_kind(gr, pipe, disc, semflow_dir, disc_dir, workspace, tmp_path):
    from semflow.app.ui import build_app

    def elem_ids(app):
        return {c.get("props", {}).get("elem_id") for c in app.config["components"]}

    full = build_app(gr, handlers_for(pipe, semflow_dir, workspace), examples=None)
    baseline = build_app(gr, handlers_for(disc, disc_dir, workspace), examples=None)
    assert {"seg-run", "synth-canvas", "synth-run", "synth-back", "model-card"} <= elem_ids(full)
    assert "synth-absent" not in elem_ids(full)
    assert {"seg-run", "synth-absent", "model-card"} <= elem_ids(baseline)
    assert "synth-canvas" not in elem_ids(baseline)


@pytest.mark.parametrize("method", ["noise-flow", "spade"])
def test_a_synthesis_only_model_synthesizes_in_the_page_and_says_it_cannot_segment(gr, method, workspace, tmp_path,
                                                                                    mask_file):
    from semflow import SemFlowPipeline
    from semflow.app.ui import build_app

    from .conftest import build_model

    folder = build_model(tmp_path / method, method=method)
    pipe = SemFlowPipeline.from_pretrained(folder).eval()
    h = handlers_for(pipe, folder, workspace)
    page = {c.get("props", {}).get("elem_id"): c.get("props", {}) for c in build_app(gr, h).config["components"]}
    assert {"seg-absent", "synth-canvas", "synth-run", "model-card"} <= set(page) and "seg-run" not in page
    assert not page["synth-back"]["visible"]  # nothing to segment back with
    assert page["synth-steps"]["visible"] == (method == "noise-flow")  # the GAN has no steps
    editor, _ = h.load_mask(str(mask_file))
    state, gallery, _ = h.synthesize(editor, 2, 0, 2, pipe.default_solver)
    assert len(gallery) == 2 and state["images"].shape[0] == 2
    with pytest.raises(SemflowInputError, match="only synthesizes"):
        h.segment_back(state, 2, None)
    with pytest.raises(SemflowInputError, match="only synthesizes"):
        h.segment([str(mask_file)], 2, None, 0.5)


def test_bad_input_becomes_a_message_in_the_page(gr):
    from semflow.app.ui import _guard

    def bad():
        raise SemflowInputError("image x.png is too large")

    with pytest.raises(gr.Error, match="image x.png is too large"):
        _guard(bad, gr)()


def test_command_without_gradio_says_how_to_install_it(monkeypatch, semflow_dir, capsys):
    import semflow.cli.app as command

    real = command.importlib.util.find_spec
    monkeypatch.setattr(command.importlib.util, "find_spec", lambda name: None if name == "gradio" else real(name))
    assert main(["app", "--model", str(semflow_dir)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["semflow app: error: semflow app needs Gradio: pip install 'semflow[app]'"]


def test_command_refuses_a_bad_port_before_loading_anything(tmp_path, capsys):
    pytest.importorskip("gradio")
    assert main(["app", "--model", str(tmp_path / "missing"), "--port", "70000"]) == 2
    assert "--port 70000; expected 1 to 65535" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- issue 23
def _canvas(gr, handlers):
    from semflow.app.ui import build_app

    app = build_app(gr, handlers, examples=None)
    return next(b for b in app.blocks.values() if getattr(b, "elem_id", None) == "synth-canvas")


@pytest.mark.parametrize("how", ["file", "bytes"])
def test_the_canvas_is_checked_before_gradio_decodes_it(gr, pipe, semflow_dir, workspace, tmp_path, monkeypatch, how):
    """A small PNG claiming 12000 x 12000 pixels, sent as the Synthesize canvas, is refused from its header: the
    decoder is never reached (Gradio's ImageEditor decodes before any handler runs)."""
    from gradio.data_classes import FileData

    from hostile import claimed_png

    editor = _canvas(gr, handlers_for(pipe, semflow_dir, workspace))
    bomb = claimed_png(tmp_path / "bomb.png", 12000, 12000, rows=8)  # a few hundred bytes, truncated
    monkeypatch.setattr(Image.Image, "convert", lambda *a, **k: pytest.fail("decoded the bomb"))
    part = FileData(path=str(bomb), orig_name="bomb.png") if how == "file" else bomb.read_bytes()
    with pytest.raises(gr.Error, match=r"12000x12000 = 144\.0 megapixels; the limit is 16\.8"):
        editor.convert_and_format_image(part, flatten_on_white=True)


def test_a_canvas_within_the_limits_is_decoded(gr, pipe, semflow_dir, workspace, tmp_path):
    from gradio.data_classes import FileData

    editor = _canvas(gr, handlers_for(pipe, semflow_dir, workspace))
    Image.fromarray(np.full((16, 16, 3), 7, np.uint8)).save(tmp_path / "small.png")
    picture = editor.convert_and_format_image(FileData(path=str(tmp_path / "small.png")), flatten_on_white=True)
    assert picture.shape == (16, 16, 3) and (picture == 7).all()


def test_gradio_keeps_its_hash_seed_in_the_workspace(tmp_path):
    """In a fresh process: importing Gradio through the app writes nothing outside the app's temporary folder
    (Gradio would write hash_seed.txt into the installed package)."""
    import subprocess
    import sys

    pytest.importorskip("gradio", reason="the app extra is not installed")
    script = """
import os, sys
from semflow.app.workspace import Workspace
ws = Workspace()
outside = []
def hook(event, args):
    if event == "open" and isinstance(args[0], (str, bytes)):
        mode, flags = args[1], args[2]
        if (isinstance(mode, str) and set(mode) & set("wax+")) or (mode is None and flags & (os.O_WRONLY | os.O_RDWR)):
            path = os.path.realpath(os.fsdecode(args[0]))
            if not path.startswith(os.path.realpath(str(ws.path))):
                outside.append(path)
sys.addaudithook(hook)
from semflow.app.ui import import_gradio
gr = import_gradio(ws)
import gradio.processing_utils, gradio.utils
assert gradio.utils.HASH_SEED_PATH.startswith(str(ws.path)), gradio.utils.HASH_SEED_PATH
assert os.path.isfile(gradio.utils.HASH_SEED_PATH)
print("OUTSIDE", outside)
ws.close()
"""
    import os

    inherited = ("MPLCONFIGDIR", "GRADIO_TEMP_DIR")  # set by this process's own confine()
    env = {**{k: v for k, v in os.environ.items() if k not in inherited}, "TMPDIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "OUTSIDE []" in done.stdout, done.stdout

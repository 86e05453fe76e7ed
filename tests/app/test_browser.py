"""End to end in a real browser: `semflow app` on a free loopback port, driven by Playwright in Debian's chromium.

Segment an uploaded image and read the mask back (the downloaded index PNG is byte for byte `semflow segment`'s);
paint a mask and upload one, and get K different images; upload a broken file and see the message while the
app keeps answering; stop it and find nothing left behind. Skips, saying why, where the browser or the
packages are missing (`make test` installs them where it can).
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from semflow import SemFlowPipeline
from semflow.cli.main import main
from semflow.data.shapes import COLORS
from semflow.data.transforms import resize_label
from semflow.rendering import colorize

from .conftest import SIZE, build_model, shapes_pair

pytest.importorskip("gradio", reason="the app extra is not installed: pip install -e '.[app]'")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: pip install -e '.[test]'")

START_TIMEOUT_S = 180  # importing torch and Gradio on a busy 2-core machine
ACTION_TIMEOUT_MS = 120_000


def find_chromium() -> str | None:
    """``$SEMFLOW_CHROMIUM``, else Debian's chromium on the PATH."""
    for candidate in (os.environ.get("SEMFLOW_CHROMIUM"), shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium found (apt-get install chromium, or set "
                                                          "SEMFLOW_CHROMIUM); `make test` installs it where it can")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`semflow app` in a subprocess whose temporary folder, home and working folder are empty folders of ours."""

    def __init__(self, model: Path, root: Path, examples: Path | None = None) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        for name in ("tmp", "home", "cwd"):
            (root / name).mkdir(parents=True)
        env = {**os.environ, "TMPDIR": str(root / "tmp"), "HOME": str(root / "home"),
               "OMP_NUM_THREADS": "1"}
        env.pop("GRADIO_TEMP_DIR", None)
        args = [sys.executable, "-m", "semflow", "app", "--model", str(model), "--port", str(self.port),
                "--device", "cpu"]
        if examples is not None:
            args += ["--examples", str(examples)]
        self.log = open(root / "server.log", "w+")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(args, cwd=root / "cwd", env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the app exited with {self.process.returncode}:\n{self.output()}")
            if self.answers():
                return
            time.sleep(0.5)
        self.stop()
        raise AssertionError(f"the app did not answer within {START_TIMEOUT_S} s:\n{self.output()}")

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.url, timeout=5) as response:
                return response.status == 200
        except OSError:
            return False

    def output(self) -> str:
        self.log.flush()
        return (self.root / "server.log").read_text()

    def stop(self) -> int | None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        return self.process.returncode


def png(url: str, page) -> np.ndarray:
    """Fetch a picture the page shows (same session) and decode it."""
    body = page.request.get(url).body()
    return np.asarray(Image.open(io.BytesIO(body)).convert("RGB"))


def upload(page, box: str, path: Path) -> None:
    """Drop ``path`` on the upload ``box``; again if the page was still starting and missed it (a busy machine)."""
    for attempt in range(5):
        clear = page.locator(f"{box} button[aria-label='Clear']")
        if attempt and clear.count():
            clear.first.click()  # a late first upload must not make it two files
        page.locator(f"{box} input[type=file]").set_input_files([str(path)])
        try:
            page.wait_for_selector(f"{box} :text('{path.name}')", timeout=10_000 * (attempt + 1))
            return
        except sync_api.TimeoutError:
            continue
    raise AssertionError(f"the page never took the upload {path.name}")


def wait_for_count(page, selector: str, n: int) -> None:
    page.wait_for_function(f"document.querySelectorAll({selector!r}).length >= {n}", timeout=ACTION_TIMEOUT_MS)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        # executable_path: Debian's chromium; Playwright never downloads a browser here.
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


def test_segment_synthesize_and_survive_a_broken_upload(browser, tmp_path):
    model = build_model(tmp_path / "model")
    image, label = shapes_pair()
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    Image.fromarray(image).save(inputs / "scene.png")
    Image.fromarray(label.astype(np.uint8)).save(tmp_path / "mask.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a picture")
    cli = tmp_path / "cli"
    assert main(["segment", "--model", str(model), "--device", "cpu", str(inputs / "scene.png"),
                 "--out", str(cli)]) == 0

    server = Server(model, tmp_path / "server", examples=inputs)
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(ACTION_TIMEOUT_MS)
        page.goto(server.url)
        page.wait_for_selector("#seg-run")
        assert "scene.png" in page.inner_text("body")  # --examples are offered

        # Segment: upload, run, read the mask back through its download.
        upload(page, "#seg-files", inputs / "scene.png")
        page.click("#seg-run")
        wait_for_count(page, "#seg-downloads a", 3)
        hrefs = [a.get_attribute("href") for a in page.locator("#seg-downloads a").all()]
        links = {href.rsplit("/", 1)[-1]: href for href in hrefs}
        assert set(links) == {"scene.png", "scene_color.png", "scene_vis.png"}
        for name, href in links.items():
            assert page.request.get(href).body() == (cli / name).read_bytes(), name
        shown = png(page.locator("#seg-masks img").first.get_attribute("src"), page)
        assert np.array_equal(shown[::shown.shape[0] // 20, ::shown.shape[1] // 20],
                              np.asarray(Image.open(cli / "scene_vis.png").convert("RGB")))
        assert "background" in page.inner_text("#seg-legend")

        # A broken upload: a message in the page, and the app still answers.
        page.locator("#seg-files button[aria-label='Clear']").first.click()
        upload(page, "#seg-files", tmp_path / "broken.png")
        page.click("#seg-run")
        page.wait_for_selector(".toast-body :text('cannot read image broken.png')")
        assert server.answers() and server.process.poll() is None

        # Synthesize from a painted stroke of class 2: K images that differ.
        page.get_by_role("tab", name="Synthesize").click()
        canvas = page.locator("#synth-canvas")
        canvas.get_by_role("button", name="Color").first.click()
        canvas.locator("menu.swatch button.color").nth(2).click()
        page.keyboard.press("Escape")  # close the swatches, back to the brush
        canvas.get_by_role("button", name="Brush").first.click()
        box = canvas.locator("canvas").first.bounding_box()
        cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.move(cx - 60, cy)
        page.mouse.down()
        for dx in range(-60, 61, 10):
            page.mouse.move(cx + dx, cy + 10)
        page.mouse.up()
        page.wait_for_timeout(500)  # the editor hands its new picture to the page
        page.click("#synth-run")
        wait_for_count(page, "#synth-gallery img", 4)
        samples = [png(img.get_attribute("src"), page) for img in page.locator("#synth-gallery img").all()]
        assert len(samples) == 4 and all(not np.array_equal(samples[0], s) for s in samples[1:])
        read = png(page.locator("#synth-read img").first.get_attribute("src"), page)
        green = COLORS[2]
        assert (read == green).all(axis=-1).any(), "the painted class is not in the mask the model read"

        # Upload a mask: the canvas shows it, and the model reads exactly it.
        page.locator("#synth-mask input[type=file]").set_input_files([str(tmp_path / "mask.png")])
        page.wait_for_timeout(2000)  # the canvas redraws from the upload
        before = page.locator("#synth-read img").first.get_attribute("src")
        page.click("#synth-run")
        page.wait_for_function(f"document.querySelector('#synth-read img').src !== {before!r}")
        read = png(page.locator("#synth-read img").first.get_attribute("src"), page)
        f = read.shape[0] // SIZE
        pipe = SemFlowPipeline.from_pretrained(model)
        want = colorize(resize_label(torch.from_numpy(label), (SIZE, SIZE)), pipe)
        assert np.array_equal(read[::f, ::f], want)

        page.click("#synth-back")
        page.wait_for_selector("#synth-back-miou :text('mIoU')")
        assert page.locator("#synth-back-gallery img").count() == 4
    finally:
        code = server.stop()
    assert code == 0, server.output()
    # Nothing written outside the app's temporary folder, and that folder is gone.
    leftovers = [p for p in (server.root / n for n in ("tmp", "home", "cwd")) for p in p.rglob("*")]
    assert leftovers == [], leftovers


def test_a_baseline_gets_segmentation_and_a_reason_for_no_synthesis(browser, tmp_path):
    model = build_model(tmp_path / "disc", method="discriminative")
    image, _ = shapes_pair()
    Image.fromarray(image).save(tmp_path / "scene.png")
    server = Server(model, tmp_path / "server")
    try:
        page = browser.new_page()
        page.set_default_timeout(ACTION_TIMEOUT_MS)
        page.goto(server.url)
        page.wait_for_selector("#seg-run")
        upload(page, "#seg-files", tmp_path / "scene.png")
        page.click("#seg-run")
        wait_for_count(page, "#seg-downloads a", 3)
        page.get_by_role("tab", name="Synthesize").click()
        assert "maps images to masks only" in page.inner_text("#synth-absent")
        page.get_by_role("tab", name="Model card").click()
        assert "discriminative model" in page.inner_text("#model-card")
    finally:
        assert server.stop() == 0, server.output()

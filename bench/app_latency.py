"""Time to result in `semflow app`: segmenting an image, and 4 samples at 25 steps, as a user waits for them.

Two measurements of the same actions:

* **in the browser**: `semflow app` started as a user starts it, driven by Playwright in Debian's chromium,
  from the click to the result on the page (upload, queue, model, PNG encoding, transfer, drawing); plus the
  app's start-up (command to first page);
* **in process**: the page's handlers (:class:`semflow.app.ui.Handlers`) called directly, the model's share.

Wall-clock seconds (what the user waits), median over ``--repeats``, with one torch thread in the app and in
process (``--threads``; see ``timing.py``: on the project's shared 2-core machine two threads made single
calls up to 10x slower whenever a neighbour was busy). With ``--screenshot DIR`` it also saves the two tabs, with their results, as
``DIR/app-segment.png`` and ``DIR/app-synthesize.png``.

Example (the demo's model, after ``make demo``)::

    nice python bench/app_latency.py --model semflow-demo/model --screenshot docs

Prints a Markdown table and writes ``bench/results/app_latency.json``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from semflow import SemFlowPipeline
from semflow.app.ui import Handlers
from semflow.app.workspace import Workspace
from semflow.data import open_dataset

from timing import add_threads_arg, markdown, write

SAMPLES, STEPS = 4, 25


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path("semflow-demo/model"), help="model folder (the demo's)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats of each action (median reported)")
    parser.add_argument("--photo-size", type=int, nargs=2, default=[480, 640], metavar=("H", "W"),
                        help="a second, photo-sized upload (default 480 640): decoding, overlay and files at its size")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium",
                        help="the browser (Debian's chromium); without it only the in-process times are measured")
    parser.add_argument("--screenshot", type=Path, help="folder to save the two tabs' screenshots in")
    add_threads_arg(parser)
    parser.add_argument("--out", type=Path, help="result JSON (default bench/results/app_latency.json)")
    return parser.parse_args(argv)


def inputs(folder: Path, photo_size: tuple[int, int], model_size: tuple[int, int]) -> dict[str, Path]:
    """A test image of the built-in shapes at the model's size, the same image photo-sized, and its mask."""
    sample = open_dataset(f"shapes:size={model_size[0]}", "test")[3]
    image = sample["image"].permute(1, 2, 0).numpy()
    paths = {"image": folder / "shapes.png", "photo": folder / "photo.png", "mask": folder / "mask.png"}
    Image.fromarray(image).save(paths["image"])
    Image.fromarray(image).resize(photo_size[::-1], Image.BILINEAR).save(paths["photo"])
    Image.fromarray(sample["label"].numpy().astype(np.uint8)).save(paths["mask"])
    return paths


def wall(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def in_process(model: Path, paths: dict[str, Path], repeats: int) -> dict[str, float]:
    pipe = SemFlowPipeline.from_pretrained(model).eval()
    with Workspace() as ws:
        h = Handlers(pipe, model, ws)
        editor, _ = h.load_mask(str(paths["mask"]))
        state = {}

        def synthesize():
            state["s"] = h.synthesize(editor, SAMPLES, 0, STEPS, None)[0]

        times = {
            f"segment 1 image ({pipe.size[1]}x{pipe.size[0]}), {STEPS} steps": wall(
                lambda: h.segment([str(paths["image"])], STEPS, None, 0.5), repeats),
            f"segment 1 photo ({paths['photo_size']}), {STEPS} steps": wall(
                lambda: h.segment([str(paths["photo"])], STEPS, None, 0.5), repeats),
            f"synthesize {SAMPLES} samples, {STEPS} steps": wall(synthesize, repeats),
            f"segment {SAMPLES} samples back, {STEPS} steps": wall(lambda: h.segment_back(state["s"], STEPS, None),
                                                                   repeats),
        }
    return times


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def in_browser(model: Path, paths: dict[str, Path], repeats: int, chromium: str, screenshot: Path | None,
               threads: int) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    start = time.perf_counter()
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}  # torch's intra-op threads in the app
    server = subprocess.Popen([sys.executable, "-m", "semflow", "app", "--model", str(model), "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=env)
    try:
        while not answers(url):
            if server.poll() is not None or time.perf_counter() - start > 300:
                raise SystemExit("the app did not start")
            time.sleep(0.2)
        times = {"start the app (command to first page)": time.perf_counter() - start}
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            page.set_default_timeout(300_000)

            def segment(name: str) -> float:
                page.goto(url)
                page.wait_for_selector("#seg-run")
                page.locator("#seg-files input[type=file]").set_input_files([str(paths[name])])
                page.wait_for_selector(f"#seg-files :text('{paths[name].name}')")
                t = time.perf_counter()
                page.click("#seg-run")
                page.wait_for_function("document.querySelectorAll('#seg-downloads a').length >= 2 && "
                                       "document.querySelector('#seg-strips img')")
                return time.perf_counter() - t

            def synthesize() -> float:
                page.goto(url)
                page.wait_for_selector("#seg-run")
                page.get_by_role("tab", name="Synthesize").click()
                page.locator("#synth-mask input[type=file]").set_input_files([str(paths["mask"])])
                page.wait_for_timeout(1500)  # the canvas redraws from the upload
                t = time.perf_counter()
                page.click("#synth-run")
                page.wait_for_function(f"document.querySelectorAll('#synth-gallery img').length >= {SAMPLES}")
                return time.perf_counter() - t

            for label, fn in ((f"segment 1 image, {STEPS} steps", lambda: segment("image")),
                              (f"segment 1 photo ({paths['photo_size']}), {STEPS} steps", lambda: segment("photo")),
                              (f"synthesize {SAMPLES} samples, {STEPS} steps", synthesize)):
                fn()  # warm-up
                times[label] = statistics.median(fn() for _ in range(repeats))
            if screenshot is not None:
                screenshots(page, url, paths, screenshot)
            browser.close()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    return times


def screenshots(page, url: str, paths: dict[str, Path], folder: Path) -> None:
    """Both tabs with their results: a photo segmented, a mask synthesized and segmented back."""
    folder.mkdir(parents=True, exist_ok=True)
    page.goto(url)
    page.wait_for_selector("#seg-run")
    page.locator("#seg-files input[type=file]").set_input_files([str(paths["image"])])
    page.wait_for_selector(f"#seg-files :text('{paths['image'].name}')")
    page.click("#seg-run")
    page.wait_for_function("document.querySelector('#seg-strips img')")
    page.wait_for_timeout(1000)
    page.screenshot(path=str(folder / "app-segment.png"))
    page.get_by_role("tab", name="Synthesize").click()
    page.locator("#synth-mask input[type=file]").set_input_files([str(paths["mask"])])
    page.wait_for_timeout(1500)
    page.click("#synth-run")
    page.wait_for_function(f"document.querySelectorAll('#synth-gallery img').length >= {SAMPLES}")
    page.click("#synth-back")
    page.wait_for_selector("#synth-back-miou :text('mIoU')")
    page.evaluate("window.scrollTo(0, 0)")
    page.wait_for_timeout(1000)
    page.screenshot(path=str(folder / "app-synthesize.png"), full_page=True)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    pipe_size = tuple(SemFlowPipeline.from_pretrained(args.model).size)
    with tempfile.TemporaryDirectory() as tmp:
        paths = inputs(Path(tmp), tuple(args.photo_size), pipe_size)
        paths["photo_size"] = f"{args.photo_size[1]}x{args.photo_size[0]}"  # type: ignore[assignment]
        library = in_process(args.model, paths, args.repeats)
        browser = {}
        if Path(args.chromium).is_file():
            browser = in_browser(args.model, paths, args.repeats, args.chromium, args.screenshot, args.threads)
        else:
            print(f"no browser at {args.chromium}: in-process times only")
    rows = [[what, f"{s:.2f}"] for what, s in browser.items()]
    rows += [[f"{what} (handlers, in process)", f"{s:.2f}"] for what, s in library.items()]
    print(f"semflow app, model {args.model} ({pipe_size[1]}x{pipe_size[0]}), torch threads "
          f"{torch.get_num_threads()}, {os.cpu_count()} CPUs; wall-clock seconds, median of {args.repeats}")
    print(markdown(["action", "seconds"], rows))
    path = write("app_latency", {"model": str(args.model), "repeats": args.repeats, "browser_s": browser,
                                 "in_process_s": library}, args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

"""An image bomb against `semflow app`'s Synthesize endpoint: the server's peak memory, and whether it answers next.

Starts `semflow app` as a user does (on 127.0.0.1, one torch thread), sends the Synthesize endpoint (what the
page's Synthesize button calls, through ``gradio_client``) a canvas whose pictures are one small PNG claiming
``--side`` x ``--side`` pixels (all zeros, compressed: about 420 kB for 12000 x 12000), then a normal 16 x 16
canvas. Reports the server's peak resident memory (``VmHWM`` of ``/proc/PID/status``) before and after the bomb,
its resident memory after, the bomb's answer and how long it took, and the next request's time.

Example::

    nice python bench/app_bomb.py --model semflow-demo/model

Prints a Markdown table and writes ``bench/results/app_bomb.json``.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

from timing import markdown, write

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from hostile import claimed_png  # noqa: E402  (the tests' bomb: one definition)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path("semflow-demo/model"), help="a SemFlow model folder")
    parser.add_argument("--side", type=int, default=12000, help="the pixels the bomb's header claims per side")
    parser.add_argument("--steps", type=int, default=1, help="solver steps of the normal request")
    return parser.parse_args(argv)


def memory(pid: int) -> dict[str, float]:
    """Peak (``VmHWM``) and current (``VmRSS``) resident memory of process ``pid``, MiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {key: int(fields[key].split()[0]) / 1024 for key in ("VmHWM", "VmRSS")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, server: subprocess.Popen, timeout: float = 180) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if server.poll() is not None:
            raise SystemExit(f"the app exited with code {server.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit("the app did not start")


def synthesize(client, picture: str, steps: int) -> tuple[float, str]:
    """One Synthesize request with ``picture`` as the canvas; ``(seconds, "ok" or the error it answered)``."""
    from gradio_client import handle_file

    canvas = {"background": handle_file(picture), "layers": [], "composite": handle_file(picture)}
    began = time.perf_counter()
    try:
        client.predict(canvas, 1, 0, steps, None, api_name="/synthesize")
        answer = "ok"
    except Exception as err:  # noqa: BLE001  (gradio_client raises AppError with the page's message)
        answer = " ".join(str(err).split())[:160]
    return time.perf_counter() - began, answer


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from gradio_client import Client

    folder = Path(tempfile.mkdtemp(prefix="app-bomb-"))
    bomb = claimed_png(folder / "bomb.png", args.side, args.side)
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(folder / "small.png")
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    server = subprocess.Popen([sys.executable, "-m", "semflow", "app", "--model", str(args.model), "--port",
                               str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_until_up(url, server)
        client = Client(url, verbose=False)
        warm_s, warm = synthesize(client, str(folder / "small.png"), args.steps)
        before = memory(server.pid)
        bomb_s, bomb_answer = synthesize(client, str(bomb), args.steps)
        after = memory(server.pid)
        next_s, next_answer = synthesize(client, str(folder / "small.png"), args.steps)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    rows = [
        ["bomb file", f"{bomb.stat().st_size / 1024:.0f} kB claiming {args.side}x{args.side}"],
        ["server peak memory before the bomb (MiB)", before["VmHWM"]],
        ["server peak memory after the bomb (MiB)", after["VmHWM"]],
        ["server memory after the bomb (MiB)", after["VmRSS"]],
        ["bomb answered in (s)", bomb_s],
        ["bomb's answer", bomb_answer],
        ["next request answered in (s)", next_s],
        ["next request's answer", next_answer],
        ["a warm request before (s)", warm_s],
    ]
    print(markdown(["", "value"], rows))
    report = {"side": args.side, "bomb_bytes": bomb.stat().st_size, "before": before, "after": after,
              "bomb_seconds": bomb_s, "bomb_answer": bomb_answer, "next_seconds": next_s, "next_answer": next_answer,
              "warm_seconds": warm_s, "warm_answer": warm, "model": str(args.model)}
    print(f"wrote {write('app_bomb', report)}")


if __name__ == "__main__":
    main()

"""``semflow app``: the model in a browser page (Gradio): segment images, paint masks into images, its card.

Serves on 127.0.0.1 unless ``--host`` says otherwise and never opens a public share link. Requests run one
at a time; uploads above the size limits get a message in the page. Everything written (uploads, the
downloadable PNGs) lives in one temporary folder that is removed when the server stops (Ctrl+C).
Needs the optional extra: ``pip install 'semflow[app]'``.
"""

from __future__ import annotations

import argparse
import importlib.util
import signal
from pathlib import Path

from semflow.cli.common import add_device_arg, load_pipeline, positive_int
from semflow.errors import SemflowInputError

INSTALL_HINT = "semflow app needs Gradio: pip install 'semflow[app]'"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("app", help="the model in a browser page: segment, synthesize, model card",
                              description=__doc__)
    p.add_argument("--model", required=True, type=Path, help="model folder (any method)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1, this machine only; 0.0.0.0 opens it to the network)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--examples", type=Path, help="folder of example images offered on the Segment tab")
    p.add_argument("--max-upload-mb", type=float, default=20.0, help="largest upload in MiB (default 20)")
    p.add_argument("--max-megapixels", type=float, default=16.8,
                   help="largest upload in megapixels, H*W/1e6 (default 16.8, 4096x4096)")
    p.add_argument("--max-images", type=positive_int, default=8, help="images per segmentation request (default 8)")
    add_device_arg(p)
    p.set_defaults(func=run)


def _stop_on_signals() -> None:
    """SIGINT and SIGTERM end the server like Ctrl+C, so the temporary folder is removed (a shell starts
    background jobs with SIGINT ignored; the app takes it back)."""
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def run(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("gradio") is None:
        raise SemflowInputError(INSTALL_HINT)
    from semflow.app.uploads import UploadLimits
    from semflow.app.workspace import Workspace, confine
    from semflow.io import list_images

    if not 1 <= args.port <= 65535:
        raise SemflowInputError(f"--port {args.port}; expected 1 to 65535")
    if args.max_upload_mb <= 0 or args.max_megapixels <= 0:
        raise SemflowInputError("--max-upload-mb and --max-megapixels must be positive")
    examples = list_images([args.examples]) if args.examples is not None else []
    limits = UploadLimits(max_bytes=int(args.max_upload_mb * 2**20), max_pixels=int(args.max_megapixels * 1e6),
                          max_files=args.max_images)
    _stop_on_signals()
    with Workspace() as workspace:
        confine(workspace)  # before torchmetrics and Gradio import matplotlib
        pipe = load_pipeline(args.model, args.device)
        from semflow.app.ui import Handlers, build_app, import_gradio, serve

        gr = import_gradio(workspace)
        app = build_app(gr, Handlers(pipe, args.model, workspace, limits), examples)
        url = f"http://{'127.0.0.1' if args.host in ('0.0.0.0', '::') else args.host}:{args.port}"
        if args.host not in ("127.0.0.1", "localhost", "::1"):
            print(f"semflow app: listening on {args.host}: anyone who can reach this machine can use the app "
                  "(there is no login)")
        print(f"semflow app: {pipe.method} model {args.model} at {url} (Ctrl+C stops; files in {workspace.path})",
              flush=True)
        try:
            serve(app, gr, args.host, args.port, limits)
        except OSError as err:
            raise SemflowInputError(f"cannot listen on {args.host}:{args.port}: {err}; pick another --port") from None
        finally:
            app.close()
    print("semflow app: stopped; temporary files removed")
    return 0

"""The app's one temporary folder: every file it (and Gradio, for uploads) writes lives under it.

Each request writes into a fresh subfolder, so two users never see each other's files; subfolders older than
``max_age_s`` are removed as new ones are made, and :meth:`Workspace.close` removes the whole folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from pathlib import Path


class Workspace:
    """A temporary folder (under ``$TMPDIR``) with one subfolder per request.

    Args:
        max_age_s: a request's files are kept at least this long (seconds), for the page to download them.
        root: where to make the folder (default: the system's temporary folder).
    """

    def __init__(self, max_age_s: float = 3600.0, root: str | Path | None = None) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="semflow-app-", dir=root))
        self.max_age_s = max_age_s
        self._lock = threading.Lock()

    @property
    def uploads(self) -> Path:
        """Where Gradio keeps uploads and the files it serves (``GRADIO_TEMP_DIR``)."""
        path = self.path / "gradio"
        path.mkdir(exist_ok=True)
        return path

    def new_folder(self) -> Path:
        """A fresh, empty folder for one request's outputs; prunes requests older than ``max_age_s``."""
        requests = self.path / "requests"
        with self._lock:
            requests.mkdir(exist_ok=True)
            now = time.time()
            for old in requests.iterdir():
                try:
                    if now - old.stat().st_mtime > self.max_age_s:
                        shutil.rmtree(old, ignore_errors=True)
                except FileNotFoundError:
                    pass
            return Path(tempfile.mkdtemp(dir=requests))

    def close(self) -> None:
        """Remove the folder and everything in it."""
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def confine(workspace: Workspace) -> None:
    """Point the libraries the app runs at the workspace, before they are imported.

    Gradio keeps uploads and the files it serves under ``GRADIO_TEMP_DIR``; matplotlib (imported by Gradio and
    torchmetrics) writes a font cache under ``MPLCONFIGDIR``. Gradio's analytics are turned off and
    huggingface_hub (which Gradio imports) kept offline: the app never calls out.
    """
    os.environ["GRADIO_TEMP_DIR"] = str(workspace.uploads)
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("MPLCONFIGDIR", str(workspace.path / "matplotlib"))

"""The app's one temporary folder: every file it (and Gradio, for uploads) writes lives under it.

Each request writes into a fresh subfolder, so two users never see each other's files; subfolders older than
``max_age_s`` are removed as new ones are made, and :meth:`Workspace.close` removes the whole folder.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import shutil
import sys
import tempfile
import threading
import time
import types
from pathlib import Path
from typing import Any


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
    _hash_seed_in(workspace.path / "gradio_hash_seed.txt")


def _hash_seed_in(path: Path) -> None:
    """Gradio keeps the seed of its file hashes in ``hash_seed.txt`` beside its own code, writing it there (into
    the installed packages) when its ``processing_utils`` is first imported; its path is ``gradio.utils``'s
    ``HASH_SEED_PATH``. Set it to ``path`` as soon as ``gradio.utils`` exists, before anything reads it."""
    module = sys.modules.get("gradio.utils")
    if module is not None:  # already imported (tests): the next read goes to the workspace
        module.HASH_SEED_PATH = str(path)  # type: ignore[attr-defined]
        return
    sys.meta_path.insert(0, _SetAfterImport("gradio.utils", "HASH_SEED_PATH", str(path)))


class _SetAfterImport(importlib.abc.MetaPathFinder):
    """Finds module ``name`` as usual and sets its attribute ``attr`` to ``value`` right after it runs."""

    def __init__(self, name: str, attr: str, value: object) -> None:
        self.name, self.attr, self.value = name, attr, value

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        def exec_module(module: types.ModuleType) -> None:
            run(module)
            setattr(module, self.attr, self.value)

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec

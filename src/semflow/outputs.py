"""Where commands write: output folders and files that can be written, one writer per folder, no collisions.

* :func:`check_output_folder` / :func:`check_output_file`: checked before any work, so a run never fails at
  its end because ``--out`` is a file, a folder, or on a read-only file system.
* :class:`FolderLock`: one run writes a folder at a time (an advisory ``flock`` on ``OUT/.semflow.lock``, which
  exists while the run writes; the kernel releases it when the process ends, so a killed run never leaves a
  stale lock, only a file the next run takes over).
* :func:`plan_outputs`: every output path of every input, checked before any work for two inputs writing the
  same file and for an output that would replace an input.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable, Iterable

from semflow.errors import SemflowInputError, SemflowOutputError

LOCK_FILE = ".semflow.lock"


def _existing_ancestor(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _writable(folder: Path) -> bool:
    """Whether files can be created in ``folder`` (permissions, and a file system not mounted read-only)."""
    try:
        read_only = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    return not read_only and os.access(folder, os.W_OK | os.X_OK)


def check_output_folder(path: str | Path, what: str = "--out") -> Path:
    """``path`` is a folder, or can be made one, and files can be written in it.

    Raises:
        SemflowInputError: ``path`` (or a parent) is a file, or it lies on a read-only file system or in a
            folder this user cannot write.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise SemflowInputError(f"{what} {path} is a file; expected a folder (existing or to be made)")
    ancestor = _existing_ancestor(path)
    if not ancestor.is_dir():
        raise SemflowInputError(f"{what} {path}: {ancestor} is a file, so the folder cannot be made")
    if not _writable(ancestor):
        raise SemflowInputError(f"{what} {path}: {ancestor} is read-only; expected a folder that can be written")
    return path


def check_output_file(path: str | Path, what: str = "--out") -> Path:
    """``path`` names a file (not a folder) whose folder exists or can be made, and can be written."""
    path = Path(path)
    if path.is_dir() or str(path).endswith(os.sep):
        raise SemflowInputError(f"{what} {path} is a folder; expected a file name")
    check_output_folder(path.parent, what=f"{what} {path}: folder")
    if path.exists() and not os.access(path, os.W_OK):
        raise SemflowInputError(f"{what} {path} is read-only")
    return path


class OutputBusy(SemflowInputError):
    """The output another semflow process is writing: the user's choice of ``--out`` (exit 2), not the machine's
    fault."""


class FolderLock:
    """Hold ``folder/.semflow.lock`` while writing ``folder``; a second writer is refused, naming the first.

    Args:
        folder: the output folder (made if missing).
        what: how the refusal names the folder (``--out``).
    """

    def __init__(self, folder: str | Path, what: str = "--out", name: str = LOCK_FILE) -> None:
        self.folder, self.what, self.name = Path(folder), what, name
        self.target: Path | None = None  # the one file locked (for_file), for the refusal
        self._fd: int | None = None
        self._made = False

    @classmethod
    def for_file(cls, path: str | Path, what: str = "--out") -> FolderLock:
        """A lock on one output file (``.NAME.semflow.lock`` beside it): two runs never write the same file."""
        path = Path(path)
        lock = cls(path.parent, what, name=f".{path.name}{LOCK_FILE}")
        lock.target = path
        return lock

    def acquire(self) -> FolderLock:
        """Take the lock (making the folder if needed); raise :class:`OutputBusy` if another run holds it."""
        import fcntl

        self._made = not self.folder.exists()
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / self.name, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            finally:
                os.close(fd)
            raise OutputBusy(
                f"{self.what} {self.target or self.folder} is being written by another semflow process (pid "
                f"{holder}); wait for it to finish or choose another {'folder' if self.target is None else 'file'} "
                "(two writers would replace each other's files)"
            ) from None
        try:  # the holder's pid, for the refusal; best effort (a full disk has no room even for this)
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        except OSError:
            pass
        self._fd = fd
        return self

    def release(self, cleanup: bool = False) -> None:
        """Let the next writer in. ``cleanup``: a failed run leaves nothing behind, so a folder this lock made
        is removed again when it holds nothing but the lock file."""
        if self._fd is None:
            return
        # Removed while still held, so that a writer waiting for it finds a fresh file; a failed run that made
        # the folder leaves none behind.
        (self.folder / self.name).unlink(missing_ok=True)
        if cleanup and self._made and not any(self.folder.iterdir()):
            self.folder.rmdir()
        os.close(self._fd)  # releases the flock
        self._fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.release(cleanup=exc_type is not None)

    def __del__(self) -> None:
        if self._fd is not None:
            os.close(self._fd)


def plan_outputs(inputs: Iterable[Path], names: Callable[[Path], list[str]], out: Path) -> list[list[Path]]:
    """The output paths of each input (``out / name`` for ``name`` in ``names(input)``), checked before any work.

    Raises:
        SemflowInputError: two inputs would write the same file (``x.png`` and ``x_color.png`` under
            ``segment``; names are compared ignoring case, as some file systems do), or an output would
            replace one of the inputs (``--out`` is the input folder).
    """
    inputs = list(inputs)
    sources = {_key(p): p for p in inputs}
    seen: dict[str, Path] = {}
    plans = []
    for source in inputs:
        paths = [out / name for name in names(source)]
        for path in paths:
            key = _key(path)
            if key in sources:
                raise SemflowInputError(
                    f"--out {out}: writing {path.name} for {source} would replace the input {sources[key]}; "
                    "choose an output folder that holds no inputs"
                )
            if key in seen and seen[key] != source:
                raise SemflowInputError(
                    f"{source} and {seen[key]} would both write {path}; rename one of them (outputs would collide)"
                )
            seen[key] = source
        plans.append(paths)
    return plans


def _key(path: Path) -> str:
    return str(path.resolve()).casefold()


def write_failure(err: BaseException, where: str | Path | None = None) -> str | None:
    """Why a write failed, when ``err`` is the machine refusing one (a full disk, a read-only or vanished folder);
    ``None`` for any other error.

    Besides ``OSError``, the writers of weights report a refused write in their own way: safetensors raises
    ``SafetensorError("... I/O error: No space left on device")`` and torch's zip writer (``torch.save``) a
    ``RuntimeError`` about the file position it could not reach. ``where``: a path on the disk written to, checked
    for room when the message does not say why.
    """
    if isinstance(err, OSError):
        return err.strerror or str(err)
    text = str(err)
    if type(err).__name__ == "SafetensorError" and "I/O error" in text:
        return text.split("I/O error:", 1)[1].split("(os error")[0].strip() or "I/O error"
    if isinstance(err, RuntimeError) and ("PytorchStreamWriter" in text or "inline_container" in text):
        if where is not None:
            try:
                if shutil.disk_usage(_existing_ancestor(Path(where))).free < 1 << 20:
                    return "No space left on device"
            except OSError:
                pass
        return "the file could not be written"
    return None

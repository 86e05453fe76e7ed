"""Reading pickled weight files (``.bin``, ``.pt``, ``.pth``) without running code: the one place semflow calls
``torch.load``.

A pickle can name any Python callable, so unpickling an untrusted file can run code. ``torch.load`` with
``weights_only=True`` unpickles through an allow-list (tensors, numbers, strings, containers, plus the
``extra_globals`` given); a file that needs anything else is refused here with one line, never with torch's
advice to retry with ``weights_only=False``. Model folders hold safetensors only; this reads the files users
bring (the authors' released ``.bin``, TAESD ``.pth``) and the parts of training checkpoints Accelerate pickles.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any, Iterable

import torch

from semflow.errors import SemflowInputError

# Suffixes of files written by torch.save (pickles); model folders must not hold any.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")


class UnsafePickle(SemflowInputError):
    """A pickle that needs more than tensors and numbers to load (it could run code): refused."""


def load_weights_only(path: str | Path, what: str = "weights", extra_globals: Iterable[Any] = (),
                      mmap: bool = False) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU with one-line errors.

    Args:
        path: a ``torch.save`` file (zip or legacy format).
        what: what the file should be, for messages.
        extra_globals: further allow-listed callables (Accelerate's numpy ones for random states).
        mmap: map the tensors instead of reading them (zip format only; checks a file without its memory).

    Raises:
        UnsafePickle: the file names objects outside the allow-list.
        SemflowInputError: missing, truncated or corrupt file.
    """
    path = Path(path)
    try:
        with torch.serialization.safe_globals(list(extra_globals)):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and zipfile.is_zipfile(path))
    except pickle.UnpicklingError as err:
        named = [line.strip() for line in str(err).splitlines() if "GLOBAL" in line.upper()]
        if not named:  # not a refused object but bytes that are no pickle at all
            reason = (str(err).strip().splitlines() or ["not a pickle"])[-1]
            raise SemflowInputError(f"{path}: truncated or corrupt ({reason}); expected {what}") from None
        reason = named[0].rstrip(".")
        raise UnsafePickle(
            f"{path}: refused, it holds more than tensors and numbers ({reason}); loading it could run code, so "
            f"semflow reads pickled {what} with weights_only=True only (convert the file to safetensors)"
        ) from None
    except FileNotFoundError:
        raise SemflowInputError(f"{path} does not exist; expected {what}") from None
    except (RuntimeError, OSError, EOFError, ValueError, zipfile.BadZipFile, AttributeError, TypeError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0].split(". ")[0]
        raise SemflowInputError(f"{path}: truncated or corrupt ({reason}); expected {what}") from None

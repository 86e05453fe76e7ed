"""Old import paths that keep working for one release (0.2 removes them).

Each old module is three lines: a docstring naming the new home and ``__getattr__ = moved(__name__, NEW)``,
which warns once on import (``DeprecationWarning``) and hands every attribute over to the new module.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any, Callable


def moved(old: str, new: str) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``old`` that forwards to ``new``; warns that ``old`` moved."""
    warnings.warn(f"{old} moved to {new}; the old path goes in semflow 0.2", DeprecationWarning, stacklevel=3)

    def __getattr__(name: str) -> Any:
        return getattr(importlib.import_module(new), name)

    return __getattr__

"""Moved to :mod:`semflow.models.dsm`; this path keeps working until semflow 0.2."""

from semflow._moved import moved

__getattr__ = moved(__name__, "semflow.models.dsm")

"""Moved to :mod:`semflow.flow.velocity`; this path keeps working until semflow 0.2."""

from semflow._moved import moved

__getattr__ = moved(__name__, "semflow.flow.velocity")

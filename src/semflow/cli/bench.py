"""``semflow bench``: reproducible comparisons. ``semflow bench paper``: the analogs of the paper's Tables 1 and 2."""

from __future__ import annotations

import argparse

from semflow.cli import paper


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("bench", help="reproduce the paper's comparisons on a data set", description=__doc__)
    benches = p.add_subparsers(dest="bench", metavar="BENCH", required=True)
    paper.register(benches)

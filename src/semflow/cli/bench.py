"""``semflow bench``: reproducible comparisons. ``semflow bench paper``: the analogs of the paper's Tables 1 and 2;
``semflow bench judge``: the data set's judge of syntheses."""

from __future__ import annotations

import argparse

from semflow.cli import judge, paper


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("bench", help="reproduce the paper's comparisons on a data set", description=__doc__)
    benches = p.add_subparsers(dest="bench", metavar="BENCH", required=True)
    paper.register(benches)
    judge.register(benches)

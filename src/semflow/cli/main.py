"""``semflow`` command line: one module per command, each with ``register(subparsers)``."""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from semflow._version import __version__
from semflow.errors import SemflowInputError, SemflowOutputError

# Command modules in the order ``semflow --help`` lists them.
COMMANDS = ["demo", "train", "segment", "synthesize", "evaluate", "app", "bench", "encode_mask", "prepare", "import_authors"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="semflow",
        description="SemFlow: semantic segmentation and image synthesis as one rectified flow.",
    )
    parser.add_argument("--version", action="version", version=f"semflow {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"semflow.cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (2 for bad input, 1 when an output could not be written,
    130 when interrupted).

    Python warnings raised while a command runs (Pillow's DecompressionBombWarning, torch's and diffusers' notes
    on pickles) are held back: a refused input gets its one line alone, and a command that finishes shows them
    after its output.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    with warnings.catch_warnings(record=True) as held:
        code = _run(args)
    if code in (0, 130):
        for w in held:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno, w.file, w.line)
    return code


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.func(args) or 0)
    except SemflowInputError as err:
        print(f"semflow {args.command}: error: {err}", file=sys.stderr)
        return 2
    except SemflowOutputError as err:
        print(f"semflow {args.command}: error: {err}", file=sys.stderr)
        return 1
    except OSError as err:  # the machine refused a write (a full disk, a read-only folder): one line, no traceback
        where = f"{err.filename}: " if err.filename else ""
        print(f"semflow {args.command}: error: {where}{err.strerror or err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"semflow {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

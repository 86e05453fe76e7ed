"""User-facing errors.

Every problem caused by the user's input (a file, a value, a folder) raises :class:`SemflowInputError`
with one line that names the offending thing and what was expected. The command line turns it into
that line on stderr and exit code 2; library users can catch it like any ``ValueError``.
"""

from __future__ import annotations


class SemflowInputError(ValueError):
    """Bad input from the user: a file, folder or value that cannot be used.

    The message is a single line naming the file or value and what was expected.
    """


class SemflowOutputError(RuntimeError):
    """An output could not be written (a full disk, a folder that became read-only).

    The message is a single line saying what was written and what was not; the command line prints it and
    exits with code 1. Temporary files are removed before it is raised, and earlier complete outputs are kept.
    """

"""Errors that are the user's to fix.

Everything raised as :class:`InputError` is reported as one line (no traceback) by the CLI,
which exits with status 2, and as the failure message of a Dagster step.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input: a missing file, an unknown column, an impossible size, ...

    The message must name the offending file, column or key and fit on one line.
    """

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))

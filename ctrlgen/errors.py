"""The one exception type a user ever sees.

Every problem caused by input (a flag, a file, a recipe, a model) is raised as
``CtrlgenError`` with a single line that names the problem and the fix.  The
CLI prints that line and exits non-zero; anything else escaping is a bug.
"""

from __future__ import annotations


class CtrlgenError(Exception):
    """A user-facing error: one line, what is wrong and how to fix it."""

    def __init__(self, message: str) -> None:
        # Keep it to one line whatever the caller formatted.
        super().__init__(" ".join(str(message).split()))

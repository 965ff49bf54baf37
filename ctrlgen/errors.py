"""The one exception type a user ever sees.

Every problem caused by input (a flag, a file, a recipe, a model) is raised as
``CtrlgenError`` with a single line that names the problem and the fix.  The
CLI prints that line and exits non-zero; anything else escaping is a bug.
"""

from __future__ import annotations


class CtrlgenError(Exception):
    """A user-facing error: one line, what is wrong and how to fix it."""

    def __init__(self, message: str) -> None:
        # Keep it to one line whatever the caller formatted, and readable whatever the input was: a value quoted
        # back from a request (a 10,000-character seed, a pasted file) is cut, so the fix at the end stays in view.
        super().__init__(" ".join(_short(word) for word in str(message).split()))


LONGEST_WORD = 200  # characters; longer runs without a space (a quoted value) keep their first KEPT
KEPT = 120


def _short(word: str) -> str:
    return word if len(word) <= LONGEST_WORD else f"{word[:KEPT]}...({len(word):,} characters)"

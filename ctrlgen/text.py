"""Untrusted text (label and code names, card fields, paths read from files) made safe to show or to name a file.

``plain`` replaces control characters (ESC sequences, carriage returns, bells,
bidi overrides) with visible escapes, so a string from a file cannot move the
cursor, recolour or rewrite a terminal; ``markup`` also escapes rich markup
(``[/bold]`` would crash rich, ``[link=...]`` would become a link);
``file_part`` turns it into a safe file-name component.
"""

from __future__ import annotations

import re
import unicodedata

_UNSAFE_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
_FILE_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def plain(value: object, limit: int = 500) -> str:
    """``value`` as one printable line: control and format characters as ``\\xNN`` / ``\\uNNNN``, cut at ``limit``."""
    s = str(value)
    out = []
    for ch in s[:limit]:
        if ch == " " or unicodedata.category(ch) not in _UNSAFE_CATEGORIES and ch.isprintable():
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(out) + ("..." if len(s) > limit else "")


def markup(value: object, limit: int = 500) -> str:
    """``plain`` and escaped for rich markup: shows exactly the characters, never styles or links."""
    from rich.markup import escape

    return escape(plain(value, limit))


def file_part(value: object, fallback: str = "model", limit: int = 64) -> str:
    """A file-name component from untrusted text: letters, digits, '.', '_' and '-' only; no leading dot."""
    s = _FILE_UNSAFE.sub("-", str(value)).strip(".-")[:limit]
    return s or fallback

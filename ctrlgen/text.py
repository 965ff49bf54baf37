"""Untrusted text (label and code names, card fields, paths read from files) made safe to show or to name a file.

``plain`` replaces control characters (ESC sequences, carriage returns, bells,
bidi overrides) with visible escapes, so a string from a file cannot move the
cursor, recolour or rewrite a terminal; ``markup`` also escapes rich markup
(``[/bold]`` would crash rich, ``[link=...]`` would become a link);
``md_text`` and ``md_cell`` make it literal text in Markdown (a label called
``<img src=x onerror=...>`` must not become HTML in a card's NAME.md or the UI);
``file_part`` turns it into a safe file-name component.
"""

from __future__ import annotations

import re
import unicodedata

_UNSAFE_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
_FILE_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~$&:\"'=])")
_MD_INLINE = re.compile(r"([\\`*{}\[\]<>|&~$!])")  # what inline Markdown (GFM) reads as syntax, but '_'
_EDGE_UNDERSCORE = re.compile(r"(^|[^A-Za-z0-9])_|_($|[^A-Za-z0-9])")  # an underscore that could open emphasis


def plain(value: object, limit: int = 500) -> str:
    """``value`` as one printable line: control and format characters as ``\\xNN`` / ``\\uNNNN``, cut at ``limit``."""
    try:
        s = str(value)
    except ValueError:  # an integer past Python's 4,300-digit limit for str()
        s = f"<an integer of {value.bit_length():,} bits>" if isinstance(value, int) else f"<a {type(value).__name__}>"
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


def md_text(value: object) -> str:
    """``value`` as literal text inside Markdown: one line, every punctuation character backslash-escaped."""
    return _MD_SPECIAL.sub(r"\\\1", _md_line(value))


def md_cell(value: object) -> str:
    """``value`` as literal text in a Markdown table cell, escaping only what inline Markdown reads as syntax
    (HTML, entities, links, images, emphasis, code, strikethrough, math, table pipes), so that a card's
    NAME.md also reads well as plain text: ``T-shirt/top`` and ``0.290`` stay as they are.  Text that GFM
    would autolink gets ``md_text``'s full escaping."""
    text = _md_line(value)
    if any(u in text.lower() for u in ("www.", "://", "mailto:", "xmpp:", "@")):
        return md_text(text)
    text = _MD_INLINE.sub(r"\\\1", text)
    return text.replace("_", "\\_") if _EDGE_UNDERSCORE.search(text) else text


def md_code(value: object) -> str:
    """``value`` as a Markdown code span (shown verbatim, never markup) that is also safe in a table cell."""
    text = _md_line(value).replace("|", "\\|")
    fence = "`" * (max((len(r) for r in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _md_line(value: object) -> str:
    return plain(" ".join(str(value).split()), limit=10_000)

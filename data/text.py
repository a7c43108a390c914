"""Text a person typed or a file name gave, made safe to show on a page or print to a terminal.

Control characters (Unicode category Cc: escape, bell, NUL, C1 codes) could drive the terminal that
prints them, and bidirectional formatting characters (U+202E, the right-to-left override, among them)
show text in another order than it is stored ("exe.gpj" for "jpg.exe"). Both are removed; whitespace
controls become one space, except the line breaks of a note. Names, tags, notes and class names pass
through `clean_text` when they are written and again when they are read, so a hand-edited file cannot
bring the characters back.
"""
from __future__ import annotations

import re
import unicodedata

NAME_LIMIT = 200  # characters of a run's or set's name, and of a class name
TAG_LIMIT = 50
NOTE_LIMIT = 5000
BIDI_FORMATTING = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
LINE_BREAKS = re.compile(r"\r\n|[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]")  # what str.splitlines splits on


def clean_text(text: str, limit: int | None = None, lines: bool = False) -> str:
    """`text` without control or bidirectional formatting characters, cut to `limit` characters.

    Runs of whitespace become one space and the ends are trimmed; with `lines` (a note), line
    breaks are kept as "\\n", and the other whitespace as it is but for the ends of each line.
    """
    if lines:
        kept = "\n".join("".join(map(_shown, line)).rstrip() for line in LINE_BREAKS.split(text)).strip()
    else:
        kept = " ".join("".join(map(_shown, text)).split())
    return kept if limit is None else kept[:limit]


def _shown(character: str) -> str:
    """A character as it may be shown: a whitespace control as a space, other controls and
    bidirectional formatting as nothing, an undecodable byte of a file name (a lone surrogate) as U+FFFD."""
    category = unicodedata.category(character)
    if category == "Cc":
        return " " if character.isspace() else ""
    if category == "Cs":
        return "\ufffd"
    return "" if character in BIDI_FORMATTING else character

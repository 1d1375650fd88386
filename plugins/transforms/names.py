"""Splitting a person's full name into first and last name, for CRMs that want them separately."""

from __future__ import annotations

#: Words dropped before the first name (compared lowercase, without dots).
TITLES = frozenset({"mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "dame", "rev", "fr", "hon", "madam"})
#: Words dropped after the last name.
SUFFIXES = frozenset({"jr", "sr", "ii", "iii", "iv", "v", "phd", "md", "esq", "mba", "cpa", "dds", "jd", "rn"})
#: Lowercase particles that belong to the last name ("Ludwig van Beethoven" → "van Beethoven").
PARTICLES = frozenset({"van", "von", "de", "da", "del", "della", "der", "den", "di", "du", "la", "le", "ter", "bin"})


def _word(token: str) -> str:
    return token.strip(".,").lower()


def split_name(full: str) -> tuple[str | None, str | None]:
    """``(first, last)`` of a full name; middle names and initials are dropped.

    Handles titles and suffixes (``Dr. Ada M. Lovelace Jr.`` → Ada, Lovelace), the ``Last, First`` form
    (``Lovelace, Ada`` → Ada, Lovelace) and particles (``Ludwig van Beethoven`` → Ludwig, van Beethoven).
    A single word is a first name.
    """
    head, comma, tail = full.partition(",")
    tail_words = tail.split()
    if comma and tail_words and not all(_word(token) in SUFFIXES for token in tail_words):
        # "Lovelace, Ada M." — but not "Ada Lovelace, PhD", where the part after the comma is a suffix.
        given = _trim(tail_words)
        family = _trim(head.split())
        first = given[0] if given else None
        last = " ".join(family) or None
        return first, last
    tokens = _trim(head.split())
    if not tokens:
        return None, None
    if len(tokens) == 1:
        return tokens[0], None
    start = len(tokens) - 1
    while start > 1 and tokens[start - 1] in PARTICLES:
        start -= 1
    return tokens[0], " ".join(tokens[start:])


def _trim(tokens: list[str]) -> list[str]:
    # Keep at least one word: "Dr" alone is more likely a name than nothing.
    while len(tokens) > 1 and _word(tokens[0]) in TITLES:
        tokens = tokens[1:]
    while len(tokens) > 1 and _word(tokens[-1]) in SUFFIXES:
        tokens = tokens[:-1]
    return [token.rstrip(",") for token in tokens]

""" "Did you mean" hints for misspelt keys, types and names."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The choice closest to ``word``, ignoring case, spaces, underscores and hyphens (``First Name`` is
    ``first_name``), or None when none is close enough."""

    def folded(text: str) -> str:
        return text.lower().replace("_", "").replace(" ", "").replace("-", "")

    by_folded = {folded(choice): choice for choice in sorted(set(choices))}
    if folded(word) in by_folded:
        return by_folded[folded(word)]
    close = difflib.get_close_matches(folded(word), list(by_folded), n=1, cutoff=0.6)
    return by_folded[close[0]] if close else None


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'inputs'?"`` for the choice closest to ``word``, or ``""`` when none is close."""
    guess = closest(word, choices)
    return f"; did you mean {guess!r}?" if guess is not None else ""

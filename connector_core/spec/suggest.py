""" "Did you mean" hints for misspelt keys, types and names."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'inputs'?"`` for the choice closest to ``word``, or ``""`` when none is close."""
    names = sorted(set(choices))
    close = difflib.get_close_matches(word, names, n=1, cutoff=0.6)
    if not close:
        # A different case ("Type" for "type") is below difflib's cutoff for short words.
        close = [choice for choice in names if choice.lower() == word.lower()][:1]
    return f"; did you mean {close[0]!r}?" if close else ""

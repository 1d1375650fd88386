"""Keep secrets out of every log line, report, error message and file crmsync writes."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"
#: Shorter values are not masked: hiding every "1" or "on" in a log would make it unreadable, not safer.
MIN_SECRET_LENGTH = 4
#: Distinct texts whose masked form is remembered: rejects repeat a few reasons thousands of times.
MASKED_TEXTS = 1024


class Redactor:
    """Replaces known secret values with ``***`` in text and in nested data."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets: list[str] = []
        #: Texts already masked with the current secrets. ``add`` replaces it after the secrets (and ``text``
        #: reads it before them), so a text masked on another thread while a secret is added lands in the
        #: dropped memo, never in the new one.
        self._masked: dict[str, str] = {}
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str) -> None:
        """Treat one more value as secret (e.g. a key read by a plugin at run time), in the forms it takes in
        a URL too: a webhook URL sent as a query parameter shows percent-encoded in HTTP logs."""
        if len(secret) < MIN_SECRET_LENGTH:
            return
        forms = {secret, quote(secret, safe=""), quote_plus(secret, safe=""), quote(secret)}
        # Longest first, so a secret containing another is masked whole.
        self.secrets = sorted({*self.secrets, *forms}, key=len, reverse=True)
        self._masked = {}

    def text(self, value: str) -> str:
        """``value`` with every secret masked."""
        memo = self._masked
        secrets = self.secrets
        if not secrets:
            return value
        masked = memo.get(value)
        if masked is None:
            masked = value
            for secret in secrets:
                if secret in masked:
                    masked = masked.replace(secret, MASK)
            if len(memo) < MASKED_TEXTS:
                memo[value] = masked
        return masked

    def data(self, value: Any) -> Any:
        """A copy of ``value`` (dicts, lists, strings) with every secret masked."""
        if not self.secrets:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.data(k): self.data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(item) for item in value]
        return value


class RedactingFilter(logging.Filter):
    """A logging filter that masks secrets in the final message of every record it sees."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        if self.redactor.secrets:
            record.msg = self.redactor.text(record.getMessage())
            record.args = None
            # A traceback repeats the exception's message: format it now, masked (formatters reuse exc_text).
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = self.redactor.text(record.exc_text)
            if record.stack_info:
                record.stack_info = self.redactor.text(record.stack_info)
        return True

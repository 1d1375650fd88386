"""Fixtures for every test: the CLI reconfigures logging process-wide, so put it back after each test."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    filters = {handler: handler.filters[:] for handler in handlers}
    chatty = {name: logging.getLogger(name).level for name in ("httpx", "httpcore")}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for handler, kept in filters.items():
        handler.filters[:] = kept
    for name, kept_level in chatty.items():
        logging.getLogger(name).setLevel(kept_level)

"""SQLite's disk errors as ``errno`` values, for the state store and the SQLite sink alike (a module of its own:
a job without state must not load the state store to write a SQLite file)."""

from __future__ import annotations

import errno
import sqlite3


def disk_errno(exc: sqlite3.Error) -> int | None:
    """``ENOSPC`` or ``EIO`` when ``exc`` is SQLite's full-disk or I/O error, else None."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF  # the primary code of an extended one
    return {sqlite3.SQLITE_FULL: errno.ENOSPC, sqlite3.SQLITE_IOERR: errno.EIO}.get(code)

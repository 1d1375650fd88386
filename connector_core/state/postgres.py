"""The PostgreSQL state store: the same tables and statements as SQLite, in one database a team shares.

Runs of a job on different machines see one ledger, one lease and one enrichment cache (shared by every job
pointed at the same database, so a person enriched by one job is never paid for again by another). Needs the
optional extra ``crmsync[postgres]`` (psycopg 3).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from connector_core.state.sql import SCHEMA_VERSION, Cursor, SqlStateStore
from connector_core.state.store import StateError

if TYPE_CHECKING:
    import psycopg

URL_SCHEMES = ("postgresql://", "postgres://")

SCHEMA = """
CREATE TABLE IF NOT EXISTS crmsync_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id BIGSERIAL PRIMARY KEY, job TEXT NOT NULL, started_at TEXT NOT NULL,
    finished_at TEXT, status TEXT NOT NULL DEFAULT 'running', report TEXT);
CREATE INDEX IF NOT EXISTS runs_by_job ON runs (job, run_id);
CREATE TABLE IF NOT EXISTS locks (
    job TEXT PRIMARY KEY, token TEXT NOT NULL, pid BIGINT NOT NULL, host TEXT NOT NULL,
    acquired_at DOUBLE PRECISION NOT NULL, expires_at DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS journal (run_id BIGINT NOT NULL, sink TEXT NOT NULL, pairs TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS journal_by_run ON journal (run_id);
CREATE OR REPLACE VIEW journal_pairs AS
    SELECT j.run_id, j.sink, p.key, p.value AS fingerprint
    FROM journal j CROSS JOIN LATERAL json_each_text(j.pairs::json) AS p(key, value);
CREATE TABLE IF NOT EXISTS deliveries (
    job TEXT NOT NULL, sink TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL, run_id BIGINT NOT NULL,
    PRIMARY KEY (job, sink, key));
DROP INDEX IF EXISTS deliveries_by_run;
CREATE TABLE IF NOT EXISTS completed (
    job TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL, run_id BIGINT NOT NULL, sinks TEXT,
    PRIMARY KEY (job, key));
ALTER TABLE completed ADD COLUMN IF NOT EXISTS sinks TEXT;
CREATE TABLE IF NOT EXISTS checkpoints (
    job TEXT NOT NULL, sink TEXT NOT NULL, checkpoint TEXT NOT NULL, run_id BIGINT NOT NULL,
    PRIMARY KEY (job, sink));
CREATE TABLE IF NOT EXISTS rejects (
    job TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL, component TEXT NOT NULL, reason TEXT NOT NULL,
    attempts BIGINT NOT NULL, status TEXT NOT NULL, data TEXT NOT NULL, source TEXT, position BIGINT,
    run_id BIGINT NOT NULL, updated_at TEXT NOT NULL, PRIMARY KEY (job, key));
CREATE TABLE IF NOT EXISTS intents (
    intent_id BIGSERIAL PRIMARY KEY, job TEXT NOT NULL, component TEXT NOT NULL, keys TEXT NOT NULL,
    started_at DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS value_packs (
    pack_id BIGSERIAL PRIMARY KEY, refs BIGINT NOT NULL, stored_at DOUBLE PRECISION NOT NULL, data BYTEA NOT NULL);
CREATE TABLE IF NOT EXISTS object_entries (
    job TEXT NOT NULL, component TEXT NOT NULL, key TEXT NOT NULL, pack_id BIGINT NOT NULL, slot INTEGER NOT NULL,
    PRIMARY KEY (job, component, key));
CREATE TABLE IF NOT EXISTS cache_namespaces (namespace_id BIGSERIAL PRIMARY KEY, namespace TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS cache_entries (
    namespace_id BIGINT NOT NULL, identity TEXT NOT NULL, pack_id BIGINT NOT NULL, slot INTEGER NOT NULL,
    PRIMARY KEY (namespace_id, identity));
"""
#: The tables the state takes, for ``storage_size``.
TABLES = (
    "crmsync_meta",
    "runs",
    "locks",
    "deliveries",
    "completed",
    "checkpoints",
    "rejects",
    "intents",
    "value_packs",
    "object_entries",
    "cache_namespaces",
    "cache_entries",
)
#: Two runners creating the schema at once must not both run the DDL.
_SCHEMA_LOCK = 0x63726D73  # "crms"


def _placeholders(sql: str) -> str:
    """The store's ``?`` placeholders as psycopg's ``%s``; a literal ``%`` (a LIKE pattern) escaped."""
    return sql.replace("%", "%%").replace("?", "%s")


def is_url(target: str) -> bool:
    """Whether a ``--state`` value names a PostgreSQL database rather than a file."""
    return target.startswith(URL_SCHEMES)


def mask_url(url: str) -> str:
    """The URL with its password replaced by ``***``: safe for logs, reports and messages."""
    try:
        parts = urlsplit(url)
        password, port = parts.password, parts.port
    except ValueError:  # a malformed URL (an unclosed [, a port that is not a number): mask by its shape
        return re.sub(r"(://[^/@]*?:)[^/@]*@", r"\1***@", url)
    if password is None:
        return url
    user = parts.username or ""
    netloc = f"{user}:***@{parts.hostname or ''}" + (f":{port}" if port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class PostgresStateStore(SqlStateStore):
    """State in a PostgreSQL database (autocommit connection; every store call is one explicit transaction)."""

    for_update = " FOR UPDATE"
    FINGERPRINT_SET = "string_agg(DISTINCT {}, ',')"
    MERGES_IN_ONE_STATEMENT = False
    CONTAINS = "strpos({}, {}) > 0"
    PACKED_PAIRS = "json_object_agg(key, fingerprint)::text"
    ARRAY_PAIRS = (
        "SELECT j.run_id, j.sink, p.value ->> 0 AS key, p.value ->> 1 AS fingerprint "
        "FROM {table} j CROSS JOIN LATERAL json_array_elements(j.pairs::json) AS p(value)"
    )

    def __init__(self, url: str) -> None:
        try:
            import psycopg
        except ImportError:
            raise StateError("a postgresql:// state needs psycopg: pip install 'crmsync[postgres]'") from None
        self.url = url
        try:
            password = urlsplit(url).password
            urlsplit(url).port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError as exc:
            raise StateError(f"{mask_url(url)}: not a valid PostgreSQL URL ({exc})") from None
        try:
            self.db: psycopg.Connection[Any] = psycopg.connect(url, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if password:
                message = message.replace(password, "***")
            raise StateError(f"{self.location}: cannot connect to the state database: {message}") from None
        self._ensure_schema()
        self._create_temporary_tables()

    def _ensure_schema(self) -> None:
        with self._transaction():
            self._exec("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK,))
            exists = self._exec("SELECT to_regclass('crmsync_meta') IS NOT NULL").fetchone()[0]
            version = 0
            if exists:
                row = self._exec("SELECT value FROM crmsync_meta WHERE name = 'schema_version'").fetchone()
                version = int(row[0]) if row else 0
            elif self._exec("SELECT to_regclass('runs') IS NOT NULL").fetchone()[0]:
                raise StateError(
                    f"{self.location}: the database has a `runs` table that is not crmsync's; "
                    f"use a database (or schema, via ?options=-csearch_path=...) of its own"
                )
            if version > SCHEMA_VERSION:
                raise StateError(
                    f"{self.location}: written by a newer crmsync (state schema {version}, this one knows up to "
                    f"{SCHEMA_VERSION}); upgrade crmsync"
                )
            if version < SCHEMA_VERSION:
                if version in (3, 4):  # another journal layout: repacked below (its index made anew with the table)
                    self._exec("DROP VIEW IF EXISTS journal_pairs")  # its columns' types may differ
                    self._exec("ALTER TABLE journal RENAME TO old_journal")
                    self._exec("DROP INDEX IF EXISTS journal_by_run")
                self.db.execute(SCHEMA)
                self._migrate_unpacked_values()
                self._repack_journal(version)
                self._exec(
                    "INSERT INTO crmsync_meta (name, value) VALUES ('schema_version', ?) "
                    "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                    (str(SCHEMA_VERSION),),
                )

    @property
    def location(self) -> str:
        return mask_url(self.url)

    def storage_size(self) -> tuple[int, str]:
        row = self._exec(
            "SELECT COALESCE(SUM(pg_total_relation_size(to_regclass(name))), 0) FROM unnest(?::text[]) AS name",
            (list(TABLES),),
        ).fetchone()
        return int(row[0]), "pg_total_relation_size of crmsync's tables (every job sharing this database)"

    def _has_table(self, name: str) -> bool:
        return bool(self._exec("SELECT to_regclass(?) IS NOT NULL", (name,)).fetchone()[0])

    def reopen(self) -> PostgresStateStore:
        return PostgresStateStore(self.url)

    def _exec(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        return self.db.execute(_placeholders(sql), params)

    def _many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self.db.cursor() as cursor:
            cursor.executemany(_placeholders(sql), rows)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        with self.db.transaction():
            yield

    def _after_import(self) -> None:
        for table, column in (("runs", "run_id"), ("intents", "intent_id")):
            self._exec(
                f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                f"GREATEST((SELECT MAX({column}) FROM {table}), 1))"
            )

    def close(self) -> None:
        self.db.close()

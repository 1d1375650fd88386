"""The ``crmsync state export`` format, and the checks an import runs before it touches a store."""

from __future__ import annotations

from typing import Any

EXPORT_FORMAT = "crmsync-state/1"
#: Tables holding one job's rows (``runs`` and the shared ``cache`` are exported too).
JOB_TABLES = ("deliveries", "completed", "checkpoints", "rejects", "intents", "objects")

_TEXT, _INT, _REAL, _NULL = (str,), (int,), (int, float), (type(None),)
#: Per table: column -> accepted Python types. Every column is required unless it accepts None.
COLUMNS: dict[str, dict[str, tuple[type, ...]]] = {
    "runs": {
        "run_id": _INT,
        "job": _TEXT,
        "started_at": _TEXT,
        "finished_at": _TEXT + _NULL,
        "status": _TEXT,
        "report": _TEXT + _NULL,
    },
    "deliveries": {"job": _TEXT, "sink": _TEXT, "key": _TEXT, "fingerprint": _TEXT, "run_id": _INT},
    "completed": {"job": _TEXT, "key": _TEXT, "fingerprint": _TEXT, "run_id": _INT, "sinks": _TEXT + _NULL},
    "checkpoints": {"job": _TEXT, "sink": _TEXT, "checkpoint": _TEXT, "run_id": _INT},
    "rejects": {
        "job": _TEXT,
        "key": _TEXT,
        "fingerprint": _TEXT,
        "component": _TEXT,
        "reason": _TEXT,
        "attempts": _INT,
        "status": _TEXT,
        "data": _TEXT,
        "source": _TEXT + _NULL,
        "position": _INT + _NULL,
        "run_id": _INT,
        "updated_at": _TEXT,
    },
    "intents": {"intent_id": _INT, "job": _TEXT, "component": _TEXT, "keys": _TEXT, "started_at": _REAL},
    "objects": {"job": _TEXT, "component": _TEXT, "key": _TEXT, "outcome": _TEXT},
    "cache": {"namespace": _TEXT, "identity": _TEXT, "value": _TEXT, "stored_at": _REAL},
}


def validate_export(data: Any) -> dict[str, list[dict[str, Any]]]:
    """The tables of an export, checked row by row: known columns, required ones present, plain types.

    :raises ValueError: naming the first problem (``table[row].column``).
    """
    if not isinstance(data, dict) or data.get("format") != EXPORT_FORMAT:
        raise ValueError(f"not a crmsync state export (format {EXPORT_FORMAT})")
    tables: dict[str, list[dict[str, Any]]] = {}
    for table, columns in COLUMNS.items():
        rows = data.get(table, [])
        if not isinstance(rows, list):
            raise ValueError(f"{table}: expected a list of rows, got {type(rows).__name__}")
        for index, row in enumerate(rows):
            where = f"{table}[{index}]"
            if not isinstance(row, dict):
                raise ValueError(f"{where}: expected an object, got {type(row).__name__}")
            unknown = sorted(set(row) - set(columns))
            if unknown:
                raise ValueError(f"{where}: unknown column(s) {', '.join(unknown)}")
            for column, types in columns.items():
                if column not in row and column != "job" and type(None) not in types:
                    raise ValueError(f"{where}: missing {column}")
                value = row.get(column)
                if column in row and (not isinstance(value, types) or isinstance(value, bool)):
                    raise ValueError(f"{where}.{column}: expected {types[0].__name__}, got {type(value).__name__}")
        tables[table] = rows
    return tables

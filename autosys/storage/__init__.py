"""Where studies are kept: a declared interface (`base`), one SQLite file per study directory
(`sqlite`), or a PostgreSQL schema shared by many hosts (`postgres`); `liveness` tells which
process runs a trial and whether it is alive.

May import: `autosys.core` and the standard library (psycopg only inside `postgres`, on use).
"""

from __future__ import annotations

from pathlib import Path

from autosys.storage.base import Journal, Storage, StorageError, dumps
from autosys.storage.liveness import worker_alive, worker_id
from autosys.storage.postgres import PostgresStorage
from autosys.storage.sqlite import SCHEMA_VERSION, SQLiteStorage


def open_storage(location: str | Path, *, create: bool = True, study: str | None = None) -> SQLiteStorage:
    """A study directory or SQLite path, or a postgresql:// URL (with ?study=NAME or `study`).

    Either is a `Storage` that is also a `Journal` (observations and events).
    """
    text = str(location)
    if text.startswith(("postgresql://", "postgres://")):
        return PostgresStorage(text, study=study, create=create)
    return SQLiteStorage(location, create=create)


def storage_exists(location: str | Path, study: str | None = None) -> bool:
    text = str(location)
    if text.startswith(("postgresql://", "postgres://")):
        try:
            storage = PostgresStorage(text, study=study, create=False)
        except StorageError as exc:
            if "no study" in str(exc):
                return False
            raise
        storage.close()
        return True
    return (Path(location) / SQLiteStorage.FILENAME).exists() or (Path(location).is_file())


__all__ = [
    "SCHEMA_VERSION", "Journal", "PostgresStorage", "SQLiteStorage", "Storage", "StorageError",
    "dumps", "open_storage", "storage_exists", "worker_alive", "worker_id",
]

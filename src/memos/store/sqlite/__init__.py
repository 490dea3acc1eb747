"""The embedded default store: one SQLite file in WAL mode."""

from memos.store.sqlite.store import SQLiteStore

__all__ = ["SQLiteStore"]

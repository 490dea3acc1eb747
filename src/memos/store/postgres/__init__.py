"""The scale-out store: PostgreSQL with pgvector (``pip install 'memos[postgres]'``)."""

from memos.store.postgres.store import PostgresStore

__all__ = ["PostgresStore"]

"""SQL pieces every PostgreSQL module shares: column lists, the tenant predicate, errors.

The tenant predicate lives here, once, so that no query in the adapter is built
without it. The only formatted SQL fragments are column names from the fixed
lists below and constants; every value is a bound parameter.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg.types.string import TextLoader
from psycopg_pool import PoolTimeout

from memos.domain.models import MemoryStatus, Scope
from memos.errors import StoreError
from memos.store import rows

logger = logging.getLogger(__name__)

LIVE = MemoryStatus.ACTIVATED.value

COLS = [c.strip() for c in rows.MEMORY_COLUMNS.split(",")]
MEM_SELECT = ", ".join(f"m.{c}" for c in COLS)
MEM_INSERT = (
    f"INSERT INTO memories ({rows.MEMORY_COLUMNS}, model, dims, vec, lex, lex_len) "
    f"VALUES ({', '.join('%s' for _ in COLS)}, %s, %s, %s, %s::tsvector, %s)"
)
MSG_INSERT = (
    f"INSERT INTO messages ({rows.MESSAGE_COLUMNS}) "
    f"VALUES ({', '.join('%s' for _ in rows.MESSAGE_COLUMNS.split(','))})"
)
MSG_SELECT = ", ".join(f"m.{c.strip()}" for c in rows.MESSAGE_COLUMNS.split(","))


def scope_sql(scope: Scope, params: list[Any], alias: str = "m") -> str:
    """The tenant predicate every query carries."""
    params.append(scope.cube_id)
    sql = f"{alias}.cube_id = %s"
    if scope.agent_id is not None:
        params.append(scope.agent_id)
        sql += f" AND {alias}.agent_id = %s"
    if scope.app_id is not None:
        params.append(scope.app_id)
        sql += f" AND {alias}.app_id = %s"
    return sql


@contextmanager
def translate(action: str) -> Iterator[None]:
    """Turn a driver or pool error into the port's ``StoreError``, naming what was being done."""
    try:
        yield
    except psycopg.Error as exc:
        logger.error("postgres failed while %s: %s", action, exc)
        raise StoreError(f"storage failed while {action}: {exc}") from exc
    except PoolTimeout as exc:
        logger.error("no postgres connection while %s: %s", action, exc)
        raise StoreError(f"no database connection free while {action}; try again") from exc


def configure(conn: psycopg.Connection) -> None:
    """Per-connection setup for the pool: pgvector types, JSON as stored text."""
    register_vector(conn)
    # JSON columns come back as the text that was stored: the shared row
    # conversions parse it, exactly as for SQLite.
    conn.adapters.register_loader("json", TextLoader)


def as_array(value: Any) -> np.ndarray:
    """A stored vector as float32 (pgvector's loader gives a ``Vector`` or an array)."""
    to_numpy = getattr(value, "to_numpy", None)
    return np.asarray(to_numpy() if to_numpy else value, np.float32)


class Delta:
    """Change of a cube's live count and indexed length within one transaction."""

    def __init__(self) -> None:
        self.count = 0
        self.length = 0

    def live(self, length: int, sign: int = 1) -> None:
        self.count += sign
        self.length += sign * length

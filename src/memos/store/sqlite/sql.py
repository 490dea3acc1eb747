"""SQL pieces every SQLite module shares: the tenant predicate, error translation, placeholders.

The tenant predicate lives here, once, so that no query in the adapter is built
without it (the store, the change-set writer and the transfer code all call
``scope_sql``).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from memos.domain.models import MemoryStatus, Scope
from memos.errors import StoreError

logger = logging.getLogger(__name__)

LIVE = MemoryStatus.ACTIVATED.value


def scope_sql(scope: Scope, params: list[Any], alias: str = "m", *, by_id: bool = False) -> str:
    """The tenant predicate every query carries.

    ``by_id`` marks lookups by primary id: the unary ``+`` stops SQLite from
    walking the tenant's whole ``(cube_id, status)`` index instead of the id index.
    """
    params.append(scope.cube_id)
    sql = f"+{alias}.cube_id = ?" if by_id else f"{alias}.cube_id = ?"
    if scope.agent_id is not None:
        params.append(scope.agent_id)
        sql += f" AND {alias}.agent_id = ?"
    if scope.app_id is not None:
        params.append(scope.app_id)
        sql += f" AND {alias}.app_id = ?"
    return sql


@contextmanager
def translate(action: str) -> Iterator[None]:
    """Turn a driver error into the port's ``StoreError``, naming what was being done."""
    try:
        yield
    except sqlite3.Error as exc:
        logger.error("sqlite failed while %s: %s", action, exc)
        raise StoreError(f"storage failed while {action}: {exc}") from exc


def marks(n: int) -> str:
    """``?, ?, ...``: n placeholders for an ``IN`` list or a ``VALUES`` row."""
    return ", ".join("?" for _ in range(n))


def blob(vec: Any) -> bytes:
    return np.asarray(vec, np.float32).tobytes()

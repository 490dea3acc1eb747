"""Fill a cube's in-memory search indexes from its tables.

The store keeps both indexes as caches keyed by the cube's generation; these
functions build a fresh one when a cache is missing or stale. They read in
slices, so a million-memory cube is never held twice in memory.
"""

from __future__ import annotations

import logging
import sqlite3

import numpy as np

from memos.errors import StoreError
from memos.store.sqlite.lexical_index import CubeLexicon
from memos.store.sqlite.sql import LIVE
from memos.store.sqlite.vector_index import CubeVectors
from memos.text.lexical import lexical_text

logger = logging.getLogger(__name__)


def load_lexicon(conn: sqlite3.Connection, cube_id: str, generation: int) -> CubeLexicon:
    """BM25 postings of the cube's live memories."""
    fresh = CubeLexicon(generation)
    cursor = conn.execute(
        "SELECT rowid, key, value, context FROM memories WHERE cube_id = ? AND status = ? "
        "ORDER BY rowid",
        (cube_id, LIVE),
    )
    total = 0
    # In slices, so the texts of a whole big cube are never held at once.
    while batch := cursor.fetchmany(5000):
        fresh.add([int(r[0]) for r in batch], [lexical_text(r[1], r[2], r[3]) for r in batch])
        total += len(batch)
    logger.info("indexed %d memories for keyword search in cube %s", total, cube_id)
    return fresh


def load_vectors(conn: sqlite3.Connection, cube_id: str, dim: int, generation: int) -> CubeVectors:
    """The cube's live vectors in one matrix; a dimension mismatch says which embedder to use."""
    fresh = CubeVectors(dim, generation)
    (count,) = conn.execute(
        "SELECT count(*) FROM memory_vectors WHERE cube_id = ?", (cube_id,)
    ).fetchone()
    # Fill one preallocated matrix, a slice of rows at a time (joining all the
    # blobs first would hold the index three times; a row at a time is slow).
    mat = np.empty((int(count), dim), np.float32)
    ids = np.empty(int(count), np.int64)
    n = 0
    cursor = conn.execute(
        "SELECT v.rowid, v.vec FROM memory_vectors v JOIN memories m ON m.rowid = v.rowid "
        "WHERE v.cube_id = ? AND m.status = ? ORDER BY v.rowid",
        (cube_id, LIVE),
    )
    while n < len(ids) and (batch := cursor.fetchmany(min(8192, len(ids) - n))):
        # (rows added since the count are left out; the next search reloads)
        blobs = [r[1] for r in batch]
        if any(len(b) != 4 * dim for b in blobs):
            bad = next(len(b) // 4 for b in blobs if len(b) != 4 * dim)
            raise StoreError(
                f"stored vectors have {bad} dimensions but the embedder makes {dim}; "
                "use the embedder this data directory was built with"
            )
        mat[n : n + len(batch)] = np.frombuffer(b"".join(blobs), np.float32).reshape(-1, dim)
        ids[n : n + len(batch)] = [r[0] for r in batch]
        n += len(batch)
    fresh.adopt(ids[:n], mat[:n])
    logger.info("loaded %d vectors for cube %s", n, cube_id)
    return fresh

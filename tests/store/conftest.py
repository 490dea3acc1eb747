"""Adapters under the store conformance suite.

Every adapter of :class:`memos.store.base.MemoryStore` must pass
``test_store_conformance.py``. To add one, add a builder to ``BUILDERS`` and a
name to ``ADAPTERS``; import the adapter lazily inside the builder so a missing
driver only affects its own parameter. Tests never assume an empty backend:
each one works in freshly generated cube ids, so a shared database is fine.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from memos.store.base import MemoryStore

EMBED_MODEL = "conformance-test"


def _sqlite(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], MemoryStore]:
    from memos.store.sqlite import SQLiteStore

    path = tmp_path / "conformance.db"
    return lambda: SQLiteStore(path, embed_model=EMBED_MODEL)


def _postgres(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], MemoryStore]:
    from memos.store.postgres import PostgresStore

    url = str(request.getfixturevalue("postgres_url"))  # one real server per session
    return lambda: PostgresStore(url, embed_model=EMBED_MODEL, pool_max=4)


# name -> builder(request, tmp_path) returning an opener; each opener call is a
# new instance (connection pool, caches) on the SAME backing data.
BUILDERS: dict[str, Callable[[pytest.FixtureRequest, Path], Callable[[], MemoryStore]]] = {
    "sqlite": _sqlite,
    "postgres": _postgres,
}

ADAPTERS = ["sqlite", "postgres"]


class Backend:
    """Opens store instances of one adapter on shared data; closes them at teardown."""

    def __init__(self, name: str, opener: Callable[[], MemoryStore]) -> None:
        self.name = name
        self._opener = opener
        self.opened: list[MemoryStore] = []

    def open(self) -> MemoryStore:
        store = self._opener()
        self.opened.append(store)
        return store

    def close_all(self) -> None:
        for store in self.opened:
            with contextlib.suppress(Exception):  # best effort at teardown
                store.close()


@pytest.fixture(params=ADAPTERS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    name = str(request.param)
    b = Backend(name, BUILDERS[name](request, tmp_path))
    yield b
    b.close_all()


@pytest.fixture
def store(backend: Backend) -> MemoryStore:
    return backend.open()

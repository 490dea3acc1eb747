"""A bounded text -> value cache for per-candidate text work on the search path.

Search re-reads the same popular memories query after query; tokenising or
scanning 100 candidates costs 1-2 ms, a lookup microseconds. Cleared when full
rather than LRU-ordered: the bookkeeping would cost more than a rare refill.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class TextCache(Generic[T]):
    def __init__(self, compute: Callable[[str], T], limit: int = 100_000) -> None:
        self._compute = compute
        self._limit = limit
        self._values: dict[str, T] = {}

    def __call__(self, text: str) -> T:
        value = self._values.get(text)
        if value is None:
            if len(self._values) >= self._limit:
                self._values.clear()
            value = self._values[text] = self._compute(text)
        return value

"""The storage port and its adapters."""

from memos.store.base import MemoryStore, VectorHit

__all__ = ["MemoryStore", "VectorHit"]

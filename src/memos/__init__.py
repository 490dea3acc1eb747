"""MemOS: a memory operating system for LLM applications and agents.

``import memos`` stays cheap: the SDK classes load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["MemOS", "MemOSClient", "MemoryAPI", "__version__"]

if TYPE_CHECKING:
    from memos.sdk import MemoryAPI, MemOS, MemOSClient


def __getattr__(name: str) -> Any:
    if name in ("MemOS", "MemOSClient", "MemoryAPI"):
        from memos import sdk

        return getattr(sdk, name)
    raise AttributeError(f"module 'memos' has no attribute {name!r}")

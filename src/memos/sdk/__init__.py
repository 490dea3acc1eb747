"""Python SDK: ``MemOS`` runs in-process, ``MemOSClient`` talks to a server.

Both implement :class:`MemoryAPI` and return the same ``data`` dicts the
server's cloud endpoints return, so code can switch between them freely::

    from memos.sdk import MemOS

    with MemOS(data_dir="./mem") as mem:
        mem.add_message([{"role": "user", "content": "I like tea"}], "u1", "c1")
        hits = mem.search_memory("what do I drink?", "u1")["memory_detail_list"]
"""

from memos.sdk.base import MemoryAPI
from memos.sdk.client import MemOSClient
from memos.sdk.local import MemOS

__all__ = ["MemOS", "MemOSClient", "MemoryAPI"]

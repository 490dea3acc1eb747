"""The service layer: the one place every face (REST, SDK, CLI, MCP) calls."""

from memos.service.memory_service import AddResult, MemoryService

__all__ = ["AddResult", "MemoryService"]

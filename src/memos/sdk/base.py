"""The one surface both SDK faces share: the cloud-dialect operations.

Every method builds the cloud request body and hands it to :meth:`_call`,
which the in-process face answers with the wire handlers and the HTTP face
answers by POSTing to the server. Both return the envelope's ``data``, so
code written against :class:`MemoryAPI` runs unchanged on either.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Literal, Self

Endpoint = Literal[
    "/add/message",
    "/search/memory",
    "/get/memory",
    "/delete/memory",
    "/get/message",
    "/get/status",
    "/rerank",
    "/extract/memory",
]

Messages = Sequence[Mapping[str, Any]]


def _body(**fields: Any) -> dict[str, Any]:
    """The request body, without the fields left unset (so server defaults apply)."""
    return {k: v for k, v in fields.items() if v is not None}


class MemoryAPI(abc.ABC):
    """Add, search, list and delete memories; every call returns the ``data`` dict.

    Failures raise :class:`memos.errors.MemosError` subclasses carrying the
    cloud error code, whichever face is in use.
    """

    @abc.abstractmethod
    def _call(self, endpoint: Endpoint, body: dict[str, Any]) -> dict[str, Any]:
        """Run one cloud operation and return its ``data`` payload."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the store or HTTP connections; the object is unusable after."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def add_message(
        self,
        messages: Messages,
        user_id: str,
        conversation_id: str,
        agent_id: str | None = None,
        app_id: str | None = None,
        tags: Sequence[str] | None = None,
        info: Mapping[str, Any] | None = None,
        async_mode: bool = False,
    ) -> dict[str, Any]:
        """Store chat messages (OpenAI format dicts) and extract their memories."""
        return self._call(
            "/add/message",
            _body(
                messages=[dict(m) for m in messages],
                user_id=user_id,
                conversation_id=conversation_id,
                agent_id=agent_id,
                app_id=app_id,
                tags=None if tags is None else list(tags),
                info=None if info is None else dict(info),
                async_mode=async_mode,
            ),
        )

    def search_memory(
        self,
        query: str,
        user_id: str,
        conversation_id: str | None = None,
        filter: Mapping[str, Any] | None = None,
        memory_limit_number: int | None = None,
        relativity: float | None = None,
        include_preference: bool = True,
        include_tool_memory: bool = False,
    ) -> dict[str, Any]:
        """Memories relevant to ``query``, best first, with their ``relativity``."""
        return self._call(
            "/search/memory",
            _body(
                query=query,
                user_id=user_id,
                conversation_id=conversation_id,
                filter=None if filter is None else dict(filter),
                memory_limit_number=memory_limit_number,
                relativity=relativity,
                include_preference=include_preference,
                include_tool_memory=include_tool_memory,
            ),
        )

    def get_memory(
        self,
        user_id: str,
        page: int | None = None,
        size: int | None = None,
        filter: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One page of the user's memories plus ``total``/``pages`` counters."""
        return self._call(
            "/get/memory",
            _body(
                user_id=user_id,
                page=page,
                size=size,
                filter=None if filter is None else dict(filter),
            ),
        )

    def delete_memory(
        self,
        memory_ids: Sequence[str] | None = None,
        user_id: str | None = None,
        user_ids: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """Delete ``memory_ids`` (owned by the one user in ``user_ids``) or all of ``user_id``'s."""
        return self._call(
            "/delete/memory",
            _body(
                memory_ids=None if memory_ids is None else list(memory_ids),
                user_id=user_id,
                user_ids=None if user_ids is None else list(user_ids),
            ),
        )

    def get_message(
        self,
        user_id: str,
        conversation_id: str,
        message_limit_number: int | None = None,
    ) -> dict[str, Any]:
        """The latest raw messages of one conversation."""
        return self._call(
            "/get/message",
            _body(
                user_id=user_id,
                conversation_id=conversation_id,
                message_limit_number=message_limit_number,
            ),
        )

    def get_status(self, task_id: str) -> dict[str, Any]:
        """The status of an add task (``completed`` once its memories are searchable)."""
        return self._call("/get/status", _body(task_id=task_id))

    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        top_n: int | None = None,
        model: str | None = None,
    ) -> dict[str, Any]:
        """``documents`` ordered by relevance to ``query``: ``results`` of
        ``{index, relevance_score, document: {text}}``, best first. Stores nothing."""
        return self._call(
            "/rerank",
            _body(query=query, documents=list(documents), top_n=top_n, model=model),
        )

    def extract_memory(
        self,
        messages: Messages,
        extraction_types: Sequence[str] | None = None,
        user_id: str | None = None,
    ) -> dict[str, Any]:
        """Facts and preferences the LLM finds in ``messages``; nothing is stored.

        Needs a server (or local settings) with an LLM configured; ``user_id``
        only names the caller in sources and logs.
        """
        return self._call(
            "/extract/memory",
            _body(
                messages=[dict(m) for m in messages],
                extraction_types=None if extraction_types is None else list(extraction_types),
                user_id=user_id,
            ),
        )

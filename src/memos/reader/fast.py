"""Fast-mode reader: memories from messages without any model call.

Granularity is one memory per message (a "turn"), because search should return
the precise line that answers a question, not a whole session. A message longer
than ``chat_window_max_tokens`` is split into windows on sentence boundaries so
no memory exceeds the window. Every memory names the message it came from in
``sources`` and carries that message's ``chat_time`` as its event time.
System messages are kept as raw messages but produce no memory: they are
instructions to the assistant, not facts about the user.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from memos.domain.models import (
    MemoryItem,
    MemoryMode,
    MemoryType,
    Message,
    Role,
    Scope,
    Source,
)
from memos.text.tokens import count_tokens, cut_by_tokens

_SENTENCE_END = re.compile(r"(?<=[.!?。！？\n])\s*")
KEY_CHARS = 60


def _split_long(text: str, max_tokens: int) -> list[str]:
    """Windows of at most ``max_tokens``, cut at sentence ends where possible."""
    if count_tokens(text) <= max_tokens:
        return [text]
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for sentence in (s for s in _SENTENCE_END.split(text) if s.strip()):
        n = count_tokens(sentence)
        pieces = [sentence] if n <= max_tokens else _pack_words(sentence, max_tokens)
        for piece in pieces:
            m = count_tokens(piece)
            if current and size + m > max_tokens:
                chunks.append(" ".join(current))
                current, size = [], 0
            current.append(piece)
            size += m
    if current:
        chunks.append(" ".join(current))
    return chunks


def _pack_words(sentence: str, max_tokens: int) -> list[str]:
    """Words packed into pieces under the window; a giant word is cut at token edges."""
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    for word in sentence.split(" "):
        n = count_tokens(word)
        parts = cut_by_tokens(word, max_tokens) if n > max_tokens else [word]
        for part in parts:
            m = count_tokens(part)
            if current and size + m > max_tokens:
                pieces.append(" ".join(current))
                current, size = [], 0
            current.append(part)
            size += m
    if current:
        pieces.append(" ".join(current))
    return pieces


def make_key(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first if len(first) <= KEY_CHARS else first[: KEY_CHARS - 1].rstrip() + "…"


def message_text(msg: Message) -> str:
    """The text a memory should hold for a message, tool calls included."""
    if msg.content.strip():
        return msg.content
    if msg.tool_calls:
        calls = []
        for call in msg.tool_calls:
            fn = call.get("function") or {}
            calls.append(f"called {fn.get('name', '?')}({fn.get('arguments', '')})")
        return "; ".join(calls)
    return ""


class FastReader:
    def __init__(self, chat_window_max_tokens: int = 1024) -> None:
        self.window = chat_window_max_tokens

    def read(
        self,
        scope: Scope,
        messages: Sequence[Message],
        *,
        tags: Sequence[str] = (),
        info: dict[str, object] | None = None,
    ) -> list[MemoryItem]:
        out: list[MemoryItem] = []
        for msg in messages:
            if msg.role == Role.SYSTEM:
                continue
            text = message_text(msg)
            if not text.strip():
                continue
            source = Source(
                type="chat",
                message_id=msg.message_id or msg.id,
                role=msg.role.value,
                chat_time=msg.chat_time,
                content=text if len(text) <= 2000 else text[:2000],
            )
            mtype = MemoryType.USER if msg.role == Role.USER else MemoryType.LONG_TERM
            for chunk in _split_long(text, self.window):
                out.append(
                    MemoryItem(
                        user_id=scope.user_id,
                        cube_id=scope.cube_id,
                        agent_id=scope.agent_id,
                        app_id=scope.app_id,
                        conversation_id=msg.conversation_id,
                        memory_type=mtype,
                        key=make_key(chunk),
                        value=chunk,
                        tags=["mode:fast", *tags],
                        info=dict(info or {}),
                        sources=[source],
                        mode=MemoryMode.FAST,
                        event_time=msg.event_time or msg.create_time,
                    )
                )
        return out

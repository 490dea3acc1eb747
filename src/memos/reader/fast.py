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
from collections.abc import Iterable, Iterator, Sequence

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


def _pack(pieces: Iterable[str], max_tokens: int) -> list[str]:
    """Greedily join pieces (each within the window) into windows of <= max_tokens."""
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for piece in pieces:
        n = count_tokens(piece)
        if current and size + n > max_tokens:
            chunks.append(" ".join(current))
            current, size = [], 0
        current.append(piece)
        size += n
    if current:
        chunks.append(" ".join(current))
    return chunks


def _words(sentence: str, max_tokens: int) -> Iterator[str]:
    """A too-long sentence as words; a too-long word cut at token edges."""
    for word in sentence.split(" "):
        if count_tokens(word) > max_tokens:
            yield from cut_by_tokens(word, max_tokens)
        else:
            yield word


def _split_long(text: str, max_tokens: int) -> list[str]:
    """Windows of at most ``max_tokens``, cut at sentence ends where possible."""
    if count_tokens(text) <= max_tokens:
        return [text]
    pieces: list[str] = []
    for sentence in (s for s in _SENTENCE_END.split(text) if s.strip()):
        if count_tokens(sentence) <= max_tokens:
            pieces.append(sentence)
        else:
            pieces.extend(_pack(_words(sentence, max_tokens), max_tokens))
    return _pack(pieces, max_tokens)


CONTEXT_TURNS = 2
CONTEXT_CHARS = 600


def _context(turns: Sequence[tuple[Message, str]], i: int) -> str:
    """Neighbouring turns and the date: what a question about this turn may name.

    A reply like "Yes, last Tuesday!" only makes sense with the turn before it;
    indexing the neighbours (not returning them) lets keyword search find it.
    """
    lo, hi = max(0, i - CONTEXT_TURNS), min(len(turns), i + CONTEXT_TURNS + 1)
    parts = [t[:CONTEXT_CHARS] for j, (_, t) in enumerate(turns[lo:hi], lo) if j != i]
    if turns[i][0].chat_time:
        parts.append(str(turns[i][0].chat_time))
    return "\n".join(parts)


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
        turns = [(m, message_text(m)) for m in messages if m.role != Role.SYSTEM]
        turns = [(m, t) for m, t in turns if t.strip()]
        for i, (msg, text) in enumerate(turns):
            context = _context(turns, i)
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
                        context=context,
                        event_time=msg.event_time or msg.create_time,
                    )
                )
        return out

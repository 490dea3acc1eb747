"""A message as a client sent it, as the record the store keeps."""

from __future__ import annotations

from memos.domain.models import Message, MessageInput, Role, Scope
from memos.text.timeparse import parse_chat_time


def to_message(scope: Scope, conversation_id: str | None, msg: MessageInput, text: str) -> Message:
    """``text`` is the message's validated, flattened content (``validation.check_messages``)."""
    chat_time = None if msg.chat_time is None else str(msg.chat_time)
    return Message(
        message_id=msg.message_id,
        user_id=scope.user_id,
        cube_id=scope.cube_id,
        conversation_id=conversation_id,
        agent_id=scope.agent_id,
        app_id=scope.app_id,
        role=Role(msg.role),
        content=text,
        parts=msg.content if isinstance(msg.content, list) else None,
        tool_calls=msg.tool_calls,
        tool_call_id=msg.tool_call_id,
        chat_time=chat_time,
        event_time=parse_chat_time(msg.chat_time),
    )

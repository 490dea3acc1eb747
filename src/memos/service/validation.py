"""Checks on caller input that every face shares (ids, limits, message shapes)."""

from __future__ import annotations

from typing import Any

from memos.domain.models import MessageInput, Role
from memos.errors import (
    ConversationIdTooLong,
    EmptyField,
    InputTooLong,
    InvalidParameter,
    InvalidRelativity,
    MissingField,
    UnsupportedType,
    UserIdTooLong,
)
from memos.settings import LimitSettings
from memos.text.tokens import count_tokens

_TEXT_PART_TYPES = {"text", "input_text"}
_OTHER_PART_TYPES = {"image_url", "file", "input_image", "input_file"}


def require_id(value: str | None, field: str, limits: LimitSettings) -> str:
    if value is None or not str(value).strip():
        raise MissingField(f"{field} is required and cannot be empty")
    if len(value) > limits.max_id_chars:
        cls = {"user_id": UserIdTooLong, "conversation_id": ConversationIdTooLong}.get(
            field, InvalidParameter
        )
        raise cls(f"{field} is longer than {limits.max_id_chars} characters")
    return value


def optional_id(value: str | None, field: str, limits: LimitSettings) -> str | None:
    if value is None or value == "":
        return None
    return require_id(value, field, limits)


def check_limit(value: int | None, field: str, default: int, maximum: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or value < 1:
        raise InvalidParameter(f"{field} must be a positive integer")
    if value > maximum:
        raise InvalidParameter(f"{field} is {value}; the maximum is {maximum}")
    return value


def check_relativity(value: float | None, default: float) -> float:
    if value is None:
        return default
    if not 0.0 <= value <= 1.0:
        raise InvalidRelativity("relativity must be between 0 and 1 (0 disables the threshold)")
    return float(value)


def check_query(query: str | None, limits: LimitSettings) -> str:
    if query is None or not query.strip():
        raise MissingField("query is required and cannot be empty")
    if count_tokens(query) > limits.max_query_tokens:
        raise InputTooLong(f"query exceeds {limits.max_query_tokens} tokens; shorten it")
    return query


def flatten_content(content: str | list[dict[str, Any]] | None) -> str:
    """The text of a message; non-text parts become short placeholders."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts: list[str] = []
    for part in content:
        kind = part.get("type")
        if kind in _TEXT_PART_TYPES:
            text = part.get("text")
            if not isinstance(text, str):
                raise InvalidParameter("a text part needs a string 'text'")
            texts.append(text)
        elif kind in ("image_url", "input_image"):
            ref = part.get("image_url") if kind == "image_url" else {"url": part.get("image_url")}
            url = ref.get("url") if isinstance(ref, dict) else None
            if not isinstance(ref, dict) or (url is not None and not isinstance(url, str)):
                raise InvalidParameter('image_url must be an object such as {"url": "https://..."}')
            texts.append("[image]" if not url or url.startswith("data:") else f"[image: {url}]")
        elif kind in ("file", "input_file"):
            ref = part.get("file")
            if not isinstance(ref, dict):
                raise InvalidParameter('file must be an object such as {"file_data": ...}')
            name = (ref.get("filename") or ref.get("file_id")) if isinstance(ref, dict) else None
            texts.append(f"[file: {name or 'file'}]")
        else:
            raise UnsupportedType(
                f"unsupported content part type {kind!r}; use text, image_url or file"
            )
    return "\n".join(t for t in texts if t)


def check_messages(messages: list[MessageInput] | None, limits: LimitSettings) -> list[str]:
    """Validate messages and return their flattened texts."""
    if messages is None:
        raise MissingField("messages is required")
    if not messages:
        raise EmptyField("messages cannot be empty")
    texts: list[str] = []
    total = 0
    for i, msg in enumerate(messages):
        try:
            role = Role(msg.role)
        except ValueError:
            raise InvalidParameter(
                f"messages[{i}].role {msg.role!r} is not one of user, assistant, system, tool"
            ) from None
        for call in msg.tool_calls or []:
            if call.get("type", "function") != "function":
                raise UnsupportedType(f"messages[{i}].tool_calls type must be 'function'")
            fn = call.get("function")
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                raise InvalidParameter(
                    f"messages[{i}].tool_calls[].function must be {{name, arguments}}"
                )
            if not isinstance(fn.get("arguments", ""), str | dict):
                raise InvalidParameter(
                    f"messages[{i}].tool_calls[].function.arguments must be a JSON string"
                )
        if msg.message_id is not None and len(msg.message_id) > limits.max_id_chars:
            raise InvalidParameter(f"messages[{i}].message_id is longer than 100 characters")
        text = flatten_content(msg.content)
        if not text.strip() and not msg.tool_calls and role != Role.TOOL:
            raise MissingField(f"messages[{i}].content cannot be empty")
        total += count_tokens(text)
        if total > limits.max_add_tokens:
            raise InputTooLong(
                f"messages exceed {limits.max_add_tokens} tokens in one request; split them"
            )
        texts.append(text)
    return texts


EXTRACTION_TYPES = ("memory", "preference")
_EXTRACT_ROLES = {Role.USER, Role.ASSISTANT, Role.SYSTEM}


def check_extract_messages(messages: list[MessageInput] | None, limits: LimitSettings) -> list[str]:
    """``/extract/memory`` input: plain-text user/assistant/system messages within 8k tokens."""
    if messages is None:
        raise MissingField("messages is required")
    if not messages:
        raise EmptyField("messages cannot be empty")
    texts: list[str] = []
    total = 0
    for i, msg in enumerate(messages):
        try:
            role = Role(msg.role)
        except ValueError:
            role = None
        if role not in _EXTRACT_ROLES:
            raise InvalidParameter(f"messages[{i}].role must be one of user, assistant, system")
        if not isinstance(msg.content, str):
            raise InvalidParameter(f"messages[{i}].content must be a string")
        if not msg.content.strip():
            raise MissingField(f"messages[{i}].content cannot be empty")
        if msg.message_id is not None and len(msg.message_id) > limits.max_id_chars:
            raise InvalidParameter(f"messages[{i}].message_id is longer than 100 characters")
        total += count_tokens(msg.content)
        if total > limits.max_extract_tokens:
            raise InputTooLong(
                f"messages exceed {limits.max_extract_tokens} tokens in one extraction; split them"
            )
        texts.append(msg.content)
    return texts


def check_extraction_types(value: list[str] | None) -> list[str]:
    """The kinds to extract (``memory``, ``preference``); omitted means both."""
    if value is None:
        return list(EXTRACTION_TYPES)
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise InvalidParameter("extraction_types must be an array of strings")
    if not value:
        raise EmptyField("extraction_types cannot be empty; omit it to extract everything")
    unknown = [t for t in value if t not in EXTRACTION_TYPES]
    if unknown:
        raise InvalidParameter(
            f"extraction_types has {unknown[0]!r}; use {' and/or '.join(EXTRACTION_TYPES)}"
        )
    return list(dict.fromkeys(value))

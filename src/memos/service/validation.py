"""Checks on caller input that every face shares (ids, limits, message shapes).

Two layers. ``check_payload`` runs on every request body before any handler
(the HTTP guard in ``api/limits.py`` and the in-process SDK both call it): it
refuses what no field may hold, whatever the field (lone surrogates, integers
beyond 64 bits, NaN and infinities, over-deep nesting, huge arrays and strings).
The field checks below then validate meaning, and run again for Python callers
of the service, so nothing a caller writes can break a later read.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

from memos.domain.filters import INT64_MAX, INT64_MIN
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
from memos.text.timeparse import MAX_YEAR, MIN_YEAR, parse_chat_time
from memos.text.tokens import count_tokens


def safe_field(path: str) -> str:
    """A field path safe to echo in an error (no lone surrogates, bounded length)."""
    safe = path.encode("utf-8", "backslashreplace").decode("utf-8")
    return safe if len(safe) <= 120 else safe[:117] + "..."


def check_text(value: str, field: str, limits: LimitSettings | None = None) -> str:
    """A string every store, tokenizer and renderer can hold: valid Unicode, bounded."""
    if limits is not None and len(value) > limits.max_string_chars:
        raise InvalidParameter(
            f"{safe_field(field)} is {len(value)} characters; "
            f"the maximum is {limits.max_string_chars}"
        )
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidParameter(
                f"{safe_field(field)} is not valid Unicode (a lone surrogate such as \\ud800)"
            ) from None
    return value


def check_payload(value: Any, limits: LimitSettings, root: str = "body") -> None:
    """Refuse, naming the field, any value no field of any request may hold (40000)."""
    stack: list[tuple[Any, str, int]] = [(value, root, 0)]
    while stack:
        item, path, depth = stack.pop()
        if item is None or isinstance(item, bool):
            continue
        if isinstance(item, str):
            check_text(item, path, limits)
        elif isinstance(item, int):
            if not INT64_MIN <= item <= INT64_MAX:
                raise InvalidParameter(f"{safe_field(path)} is an integer beyond 64 bits")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise InvalidParameter(f"{safe_field(path)} must be a finite number")
        elif isinstance(item, dict | list | tuple):
            if depth >= limits.max_json_depth:
                raise InvalidParameter(
                    f"{safe_field(path)} nests deeper than {limits.max_json_depth} levels"
                )
            if len(item) > limits.max_array_items:
                raise InvalidParameter(
                    f"{safe_field(path)} has {len(item)} entries; the maximum is "
                    f"{limits.max_array_items}"
                )
            if isinstance(item, dict):
                for key, child in item.items():
                    if not isinstance(key, str):
                        raise InvalidParameter(f"{safe_field(path)} has a key that is not a string")
                    check_text(key, f"{path} key", limits)
                    stack.append((child, f"{path}.{key}", depth + 1))
            else:
                stack.extend((child, f"{path}[{i}]", depth + 1) for i, child in enumerate(item))
        else:
            raise InvalidParameter(f"{safe_field(path)} is not a JSON value")


def check_free_json(value: Any, field: str, limits: LimitSettings, *, sized: bool = True) -> None:
    """A free-form object the caller stores (``info``, parts, tool calls): JSON that
    renders back, nested at most ``max_info_depth`` levels and, when ``sized``, at most
    ``max_info_bytes`` (content parts may carry inline images: the body cap bounds them)."""
    if value is None:
        return
    bounded = limits.model_copy(update={"max_json_depth": limits.max_info_depth})
    check_payload(value, bounded, field)
    try:
        size = len(json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8"))
    except (TypeError, ValueError):
        raise InvalidParameter(f"{safe_field(field)} must be plain JSON") from None
    if sized and size > limits.max_info_bytes:
        raise InvalidParameter(
            f"{safe_field(field)} is {size} bytes as JSON; the maximum is {limits.max_info_bytes}"
        )


def check_time(value: str | int | float | None, field: str) -> datetime | None:
    """A client time (``chat_time``) as UTC, refused unless readable and in range."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidParameter(f"{safe_field(field)} must be a time string or an epoch number")
    if isinstance(value, str):
        check_text(value, field)
        if not value.strip():
            return None
    parsed = parse_chat_time(value)
    if parsed is None:
        raise InvalidParameter(
            f"{safe_field(field)} {str(value)[:40]!r} is not a time from {MIN_YEAR} to {MAX_YEAR}: "
            "use 'YYYY-MM-DD HH:MM:SS', ISO 8601 or epoch seconds"
        )
    return parsed


def check_tags(tags: Any, limits: LimitSettings, field: str = "tags") -> list[str]:
    if tags is None:
        return []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise InvalidParameter(f"{field} must be an array of strings")
    if len(tags) > limits.max_array_items:
        raise InvalidParameter(f"{field} has {len(tags)} entries; too many")
    for i, tag in enumerate(tags):
        check_text(tag, f"{field}[{i}]", limits)
    return list(tags)

_TEXT_PART_TYPES = {"text", "input_text"}
_OTHER_PART_TYPES = {"image_url", "file", "input_image", "input_file"}


def require_id(value: str | None, field: str, limits: LimitSettings) -> str:
    if value is None or not str(value).strip():
        raise MissingField(f"{field} is required and cannot be empty")
    if not isinstance(value, str):
        raise InvalidParameter(f"{field} must be a string")
    if len(value) > limits.max_id_chars:
        cls = {"user_id": UserIdTooLong, "conversation_id": ConversationIdTooLong}.get(
            field, InvalidParameter
        )
        raise cls(f"{field} is longer than {limits.max_id_chars} characters")
    check_text(value, field)
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise InvalidParameter(f"{field} cannot contain control characters")
    return value


def check_id_list(values: Any, field: str, limits: LimitSettings) -> list[str]:
    """Ids of things to act on (memory_ids): strings of 1 to ``max_id_chars``."""
    if not isinstance(values, list | tuple) or not all(
        isinstance(i, str) and 0 < len(i) <= limits.max_id_chars for i in values
    ):
        raise InvalidParameter(
            f"{field} must be strings of 1 to {limits.max_id_chars} characters"
        )
    if len(values) > limits.max_array_items:
        raise InvalidParameter(f"{field} has {len(values)} entries; too many")
    for i, value in enumerate(values):
        check_text(value, f"{field}[{i}]")
    return list(values)


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
    check_text(query, "query", limits)
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


def _check_message_fields(msg: MessageInput, i: int, limits: LimitSettings) -> None:
    """What a message stores besides its text: ids, its time, parts and tool calls."""
    for name in ("message_id", "tool_call_id"):
        value = getattr(msg, name)
        if value is not None:
            check_text(value, f"messages[{i}].{name}")
            if len(value) > limits.max_id_chars:
                raise InvalidParameter(
                    f"messages[{i}].{name} is longer than {limits.max_id_chars} characters"
                )
    check_time(msg.chat_time, f"messages[{i}].chat_time")
    if isinstance(msg.content, list):
        check_free_json(msg.content, f"messages[{i}].content", limits, sized=False)
    check_free_json(msg.tool_calls, f"messages[{i}].tool_calls", limits)


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
        _check_message_fields(msg, i, limits)
        text = flatten_content(msg.content)
        check_text(text, f"messages[{i}].content", limits)
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
        _check_message_fields(msg, i, limits)
        check_text(msg.content, f"messages[{i}].content", limits)
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

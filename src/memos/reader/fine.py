"""Fine-mode reader: an LLM turns a chat window into structured memories.

One call per window with one JSON schema (facts, preferences and, when the
window has tool calls, tool memories). The schema goes to the backend as
constrained output where it supports it; the reply is still parsed tolerantly
(:mod:`memos.llm.jsonreply` reads the JSON out of fences, prose and raw
control characters; items missing a required field are dropped). A reply that
cannot be parsed gets exactly one repair round (the bad reply and the parse
error are sent back); if that fails too, :class:`ExtractionError` carries the
raw output and the reason, so callers keep the fast memories and record the
failure instead of storing nothing silently.

Every memory names the window messages it came from in ``sources``; relative
day words are resolved against the source message's ``chat_time``.

A chat longer than ``window_tokens`` is read in several windows (see
:mod:`memos.reader.windows`), one call each; their memories are merged, exact
duplicates from the overlaps folded together. A window that still fails after
its repair is recorded in ``Extraction.failed_windows`` while the others'
memories are returned; only when every window fails is that an error.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from memos.domain.models import (
    DETAIL_KEY,
    PREFERENCE_TYPES,
    TOOL_TYPES,
    MemoryItem,
    MemoryMode,
    MemoryType,
    Message,
    Role,
    Scope,
    Source,
)
from memos.errors import MemosError
from memos.llm.base import LLM, ChatMessage, LLMError
from memos.llm.jsonreply import BadOutput, read_object
from memos.reader import prompts
from memos.reader.fast import make_key, message_text
from memos.reader.windows import (
    OVERLAP_MESSAGES,
    Window,
    merge_items,
    split_windows,
    tool_units,
    truncate,
    unit_caps,
)
from memos.text.reldate import resolve_relative_dates
from memos.text.tokens import count_tokens

logger = logging.getLogger(__name__)

Kind = Literal["memory", "preference", "tool"]
ALL_KINDS: frozenset[Kind] = frozenset({"memory", "preference", "tool"})
MAX_ITEMS = 12
SOURCE_CHARS = 2000
RAW_CHARS = 2000
DEFAULT_CONFIDENCE = 0.8
# Transcript tokens per LLM call when the caller names none: the settings'
# default ``reader.chat_window_max_tokens``, which fits a 2k-context model with
# the prompt and a 512-token reply.
DEFAULT_WINDOW_TOKENS = 1024


class ExtractionError(MemosError):
    """Fine extraction failed even after the repair retry (50143: failed to add memory).

    ``raw`` is the model's last reply, ``reason`` why it could not be used.
    """

    code = 50143
    http_status = 502

    def __init__(self, reason: str, raw: str, failures: Sequence[WindowFailure] = ()) -> None:
        data: dict[str, Any] = {"reason": reason, "raw_output": raw[:RAW_CHARS]}
        if failures:
            data["failed_windows"] = [f.summary() for f in failures]
        super().__init__(f"memory extraction failed: {reason}", data=data)
        self.reason = reason
        self.raw = raw
        self.failures = list(failures)


@dataclass
class WindowFailure:
    """A window whose extraction failed: its messages gave no fine memories."""

    window: int  # 0-based, in reading order
    message_ids: list[str]
    reason: str
    raw: str = ""
    attempts: int = 0  # LLM calls spent on it

    def summary(self) -> dict[str, Any]:
        return {"window": self.window, "message_ids": self.message_ids, "reason": self.reason}


@dataclass
class Extraction:
    """What a read produced: memory items plus how the extraction went.

    ``raw`` joins the usable replies; ``attempts`` counts LLM calls over all
    windows. ``failed_windows`` lists windows that failed while others worked.
    """

    items: list[MemoryItem]
    raw: str
    attempts: int
    language: prompts.Lang
    dropped: int = 0
    kinds: frozenset[Kind] = field(default_factory=lambda: ALL_KINDS)
    windows: int = 1
    failed_windows: list[WindowFailure] = field(default_factory=list)

    @property
    def errors(self) -> list[str]:
        return [f"window {f.window + 1}: {f.reason}" for f in self.failed_windows]

    @property
    def facts(self) -> list[MemoryItem]:
        return [
            m
            for m in self.items
            if m.memory_type not in PREFERENCE_TYPES and m.memory_type not in TOOL_TYPES
        ]

    @property
    def preferences(self) -> list[MemoryItem]:
        return [m for m in self.items if m.memory_type in PREFERENCE_TYPES]

    @property
    def tools(self) -> list[MemoryItem]:
        return [m for m in self.items if m.memory_type in TOOL_TYPES]


# ---------------------------------------------------------------------- schema
def _obj(properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


_STR: dict[str, Any] = {"type": "string"}
_SOURCES: dict[str, Any] = {"type": "array", "items": {"type": "integer"}}


def extraction_schema(kinds: Collection[Kind] = ALL_KINDS) -> dict[str, Any]:
    """The JSON schema the LLM must answer with, limited to the kinds asked for."""
    props: dict[str, Any] = {}
    if "memory" in kinds:
        props["memories"] = {
            "type": "array",
            "maxItems": MAX_ITEMS,
            "items": _obj(
                {
                    "key": _STR,
                    "value": _STR,
                    "memory_type": {"type": "string", "enum": ["UserMemory", "LongTermMemory"]},
                    "tags": {"type": "array", "items": _STR, "maxItems": 4},
                    "confidence": {"type": "number"},
                    "sources": _SOURCES,
                }
            ),
        }
    if "preference" in kinds:
        props["preferences"] = {
            "type": "array",
            "maxItems": MAX_ITEMS,
            "items": _obj(
                {
                    "preference": _STR,
                    "preference_type": {
                        "type": "string",
                        "enum": ["explicit_preference", "implicit_preference"],
                    },
                    "reasoning": _STR,
                    "sources": _SOURCES,
                }
            ),
        }
    if "tool" in kinds:
        props["tool_memories"] = {
            "type": "array",
            "maxItems": MAX_ITEMS,
            "items": _obj(
                {
                    "tool_type": {
                        "type": "string",
                        "enum": ["ToolTrajectoryMemory", "ToolSchemaMemory"],
                    },
                    "tool_value": _STR,
                    "tool_used_status": {
                        "type": "array",
                        "items": _obj(
                            {
                                "used_tool": _STR,
                                "error_type": _STR,
                                "success_rate": {"type": "number"},
                                "tool_experience": _STR,
                            }
                        ),
                    },
                    "experience": _STR,
                    "sources": _SOURCES,
                }
            ),
        }
    return _obj(props)


# ----------------------------------------------------------------- parsing
_LISTS = {"memory": "memories", "preference": "preferences", "tool": "tool_memories"}


@dataclass
class Parsed:
    """One usable entry of the reply, before it becomes a MemoryItem."""

    kind: Kind
    memory_type: MemoryType
    key: str
    value: str
    sources: list[int]
    tags: list[str] = field(default_factory=list)
    confidence: float = DEFAULT_CONFIDENCE
    detail: dict[str, Any] = field(default_factory=dict)


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _sources(value: Any, n: int) -> list[int]:
    """1-based message numbers in range (numbers given as strings count too)."""
    if not isinstance(value, list):
        value = [value]
    out: list[int] = []
    for v in value:
        if isinstance(v, bool):
            continue
        if isinstance(v, str) and v.strip().strip("[]").isdecimal():
            v = int(v.strip().strip("[]"))
        if isinstance(v, int) and 1 <= v <= n and v not in out:
            out.append(v)
    return out


def _confidence(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return DEFAULT_CONFIDENCE
    return min(1.0, max(0.0, float(value)))


def _fact(raw: dict[str, Any], n: int) -> Parsed | None:
    value = _text(raw.get("value"))
    if not value:
        return None
    mtype = MemoryType.USER if raw.get("memory_type") == "UserMemory" else MemoryType.LONG_TERM
    tags = raw.get("tags")
    return Parsed(
        kind="memory",
        memory_type=mtype,
        key=_text(raw.get("key")) or make_key(value),
        value=value,
        sources=_sources(raw.get("sources"), n),
        tags=[t.strip() for t in tags if isinstance(t, str) and t.strip()][:4]
        if isinstance(tags, list)
        else [],
        confidence=_confidence(raw.get("confidence")),
    )


def _preference(raw: dict[str, Any], n: int) -> Parsed | None:
    value = _text(raw.get("preference"))
    if not value:
        return None
    implicit = raw.get("preference_type") == "implicit_preference"
    return Parsed(
        kind="preference",
        memory_type=MemoryType.IMPLICIT_PREFERENCE if implicit else MemoryType.EXPLICIT_PREFERENCE,
        key=make_key(value),
        value=value,
        sources=_sources(raw.get("sources"), n),
        detail={"reasoning": _text(raw.get("reasoning"))},
    )


def _tool_status(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        return []
    out: list[dict[str, Any]] = []
    for entry in raw:
        if not isinstance(entry, dict) or not _text(entry.get("used_tool")):
            continue
        out.append(
            {
                "used_tool": _text(entry.get("used_tool")),
                "error_type": _text(entry.get("error_type")),
                "success_rate": _confidence(entry.get("success_rate")),
                "tool_experience": _text(entry.get("tool_experience")),
            }
        )
    return out


def _tool(raw: dict[str, Any], n: int) -> Parsed | None:
    value = _text(raw.get("tool_value"))
    if not value:
        return None
    schema = raw.get("tool_type") == "ToolSchemaMemory"
    return Parsed(
        kind="tool",
        memory_type=MemoryType.TOOL_SCHEMA if schema else MemoryType.TOOL_TRAJECTORY,
        key=make_key(value),
        value=value,
        sources=_sources(raw.get("sources"), n),
        detail={
            "tool_used_status": _tool_status(raw.get("tool_used_status")),
            "experience": _text(raw.get("experience")),
        },
    )


_PARSERS = {"memory": _fact, "preference": _preference, "tool": _tool}


def parse_extraction(
    raw: str, n_messages: int, kinds: Collection[Kind] = ALL_KINDS
) -> tuple[list[Parsed], int]:
    """Usable entries of a reply and how many were dropped; BadOutput when none can be read.

    A reply that is an object but names none of the requested lists is bad
    output (the model answered something else), not an empty extraction.
    """
    obj = read_object(raw)
    names = [_LISTS[k] for k in ALL_KINDS if k in kinds]
    if not any(name in obj for name in names):
        raise BadOutput(f"the JSON object has none of the keys {', '.join(sorted(names))}")
    out: list[Parsed] = []
    dropped = 0
    for kind in sorted(kinds):
        entries = obj.get(_LISTS[kind], [])
        if not isinstance(entries, list):
            dropped += 1
            continue
        for entry in entries[:MAX_ITEMS]:
            parsed = _PARSERS[kind](entry, n_messages) if isinstance(entry, dict) else None
            if parsed is None:
                dropped += 1
            else:
                out.append(parsed)
    return out, dropped


# ------------------------------------------------------------------ reader
def has_tool_use(messages: Sequence[Message]) -> bool:
    return any(m.role == Role.TOOL or m.tool_calls for m in messages)


def _line(i: int, msg: Message, lang: prompts.Lang, text: str | None = None) -> str:
    when = msg.chat_time or prompts.NO_TIME[lang]
    role = msg.role.value
    if msg.role == Role.TOOL and msg.tool_call_id:
        role = f"tool {msg.tool_call_id}"
    return f"[{i}] ({role}, {when}) {message_text(msg) if text is None else text}"


def _anchor(msgs: Sequence[Message]) -> datetime | None:
    """The time relative dates in these messages refer to: the first one with a chat_time."""
    for msg in msgs:
        if msg.chat_time and msg.event_time is not None:
            return msg.event_time
    return None


def _ref(msg: Message) -> str:
    return msg.message_id or msg.id


@dataclass
class _WindowResult:
    items: list[MemoryItem]
    raw: str
    attempts: int
    dropped: int


class FineReader:
    """Extracts fine memories from a chat with ``llm``, a window at a time.

    ``max_tokens`` bounds each reply (None: the LLM adapter's default);
    ``window_tokens`` bounds each call's transcript (the settings'
    ``reader.chat_window_max_tokens``); ``overlap_messages`` is how many
    trailing messages a window repeats from the one before.
    """

    def __init__(
        self,
        llm: LLM,
        *,
        max_tokens: int | None = None,
        window_tokens: int = DEFAULT_WINDOW_TOKENS,
        overlap_messages: int = OVERLAP_MESSAGES,
    ) -> None:
        if window_tokens < 16:
            raise ValueError("window_tokens must be at least 16")
        self.llm = llm
        self.max_tokens = max_tokens
        self.window_tokens = window_tokens
        self.overlap_messages = max(0, overlap_messages)

    def read(
        self,
        scope: Scope,
        messages: Sequence[Message],
        *,
        tags: Sequence[str] = (),
        info: dict[str, Any] | None = None,
        kinds: Collection[Kind] = ALL_KINDS,
    ) -> Extraction:
        """Memories of the chat; raises ExtractionError (or LLMError) when no window worked."""
        chat = [m for m in messages if m.role != Role.SYSTEM and message_text(m).strip()]
        wanted: frozenset[Kind] = frozenset(kinds)
        if not has_tool_use(chat):
            wanted -= {"tool"}
        lang = prompts.detect_language(" ".join(m.content for m in chat))
        if not chat or not wanted:
            return Extraction(items=[], raw="", attempts=0, language=lang, kinds=wanted)
        texts = self._prompt_texts(chat, lang)
        costs = [
            count_tokens(_line(i, m, lang, t))
            for i, (m, t) in enumerate(zip(chat, texts, strict=True), 1)
        ]
        windows = split_windows(costs, tool_units(chat), self.window_tokens, self.overlap_messages)
        if len(windows) > 1:
            logger.info(
                "fine extraction: %d messages (~%d tokens) read in %d windows of <= %d tokens",
                len(chat),
                sum(costs),
                len(windows),
                self.window_tokens,
            )
        results, failures = self._read_windows(
            scope, chat, windows, texts, lang, wanted, tags, info
        )
        order = {_ref(m): i for i, m in enumerate(chat)}
        items = merge_items([it for r in results for it in r.items], order)
        return Extraction(
            items=items,
            raw="\n".join(r.raw for r in results),
            attempts=sum(r.attempts for r in results) + sum(f.attempts for f in failures),
            language=lang,
            dropped=sum(r.dropped for r in results),
            kinds=wanted,
            windows=len(windows),
            failed_windows=failures,
        )

    def _read_windows(
        self,
        scope: Scope,
        chat: Sequence[Message],
        windows: Sequence[Window],
        texts: Sequence[str],
        lang: prompts.Lang,
        wanted: frozenset[Kind],
        tags: Sequence[str],
        info: dict[str, Any] | None,
    ) -> tuple[list[_WindowResult], list[WindowFailure]]:
        """Each window's result, or why it failed; raises only when nothing can work.

        A bad reply fails its window alone. A provider error (LLMError) stops the
        read: later windows would fail or time out the same way. It is raised
        when no window has worked yet, else the rest are recorded as failed.
        """
        results: list[_WindowResult] = []
        failures: list[WindowFailure] = []
        for n, window in enumerate(windows):
            picked = [chat[p] for p in window.positions]
            try:
                results.append(
                    self._read_window(scope, picked, window, texts, lang, wanted, tags, info)
                )
            except ExtractionError as exc:
                logger.warning(
                    "fine extraction: window %d/%d failed: %s", n + 1, len(windows), exc.reason
                )
                refs = [_ref(m) for m in picked]
                failures.append(WindowFailure(n, refs, exc.reason, exc.raw, attempts=2))
            except LLMError as exc:
                if not results:
                    raise
                logger.warning("fine extraction: LLM failed at window %d: %s", n + 1, exc.message)
                for later, rest in enumerate(windows[n:], n):
                    refs = [_ref(chat[p]) for p in rest.positions]
                    failures.append(
                        WindowFailure(later, refs, exc.message, attempts=int(later == n))
                    )
                break
        if not results:
            first = failures[0]
            if len(windows) == 1:
                raise ExtractionError(first.reason, first.raw)
            raise ExtractionError(
                f"all {len(windows)} windows failed (window 1: {first.reason})",
                first.raw,
                failures,
            )
        return results, failures

    def _prompt_texts(self, chat: Sequence[Message], lang: prompts.Lang) -> list[str]:
        """Each message's transcript text, cut where its tool unit outgrows a window."""
        texts = [message_text(m) for m in chat]
        for unit in tool_units(chat):
            costs = [count_tokens(_line(p + 1, chat[p], lang, texts[p])) for p in unit]
            if sum(costs) <= self.window_tokens:
                continue
            for p, cost, cap in zip(unit, costs, unit_caps(costs, self.window_tokens), strict=True):
                if cost <= cap:
                    continue
                header = count_tokens(_line(p + 1, chat[p], lang, ""))
                texts[p] = truncate(texts[p], max(cap - header, 1))
                logger.info(
                    "fine extraction: message %s has ~%d tokens, more than its window allows; "
                    "the prompt gets its first ~%d (its sources keep the text)",
                    _ref(chat[p]),
                    cost,
                    cap,
                )
        return texts

    def _read_window(
        self,
        scope: Scope,
        picked: Sequence[Message],
        window: Window,
        texts: Sequence[str],
        lang: prompts.Lang,
        wanted: frozenset[Kind],
        tags: Sequence[str],
        info: dict[str, Any] | None,
    ) -> _WindowResult:
        """One LLM call (plus at most one repair) over one window."""
        here = wanted if has_tool_use(picked) else wanted - {"tool"}
        if not here:
            return _WindowResult(items=[], raw="", attempts=0, dropped=0)
        system = prompts.SYSTEM[lang] + (prompts.TOOL_HINT[lang] if "tool" in here else "")
        transcript = "\n".join(
            _line(i, chat_msg, lang, texts[p])
            for i, (p, chat_msg) in enumerate(zip(window.positions, picked, strict=True), 1)
        )
        chat: list[ChatMessage] = [
            {"role": "system", "content": system},
            {"role": "user", "content": prompts.USER[lang].format(transcript=transcript)},
        ]
        schema = extraction_schema(here)
        raw = self.llm.chat(chat, json_schema=schema, max_tokens=self.max_tokens)
        attempts = 1
        try:
            parsed, dropped = parse_extraction(raw, len(picked), here)
        except BadOutput as first:
            logger.warning(
                "fine extraction with %s: unusable reply (%s); asking once to repair",
                self.llm.name,
                first,
            )
            chat += [
                {"role": "assistant", "content": raw},
                {"role": "user", "content": prompts.REPAIR[lang].format(reason=first)},
            ]
            raw = self.llm.chat(chat, json_schema=schema, max_tokens=self.max_tokens)
            attempts = 2
            try:
                parsed, dropped = parse_extraction(raw, len(picked), here)
            except BadOutput as second:
                raise ExtractionError(f"{second} (after one repair retry)", raw) from None
        if dropped:
            logger.info("fine extraction dropped %d entries missing required fields", dropped)
        items = [self._item(scope, p, picked, tags, info) for p in parsed]
        return _WindowResult(items=items, raw=raw, attempts=attempts, dropped=dropped)

    @staticmethod
    def _item(
        scope: Scope,
        parsed: Parsed,
        window: Sequence[Message],
        tags: Sequence[str],
        info: dict[str, Any] | None,
    ) -> MemoryItem:
        # No valid source numbers: the whole window is what it came from.
        picked = [window[i - 1] for i in parsed.sources] or list(window)
        anchor = _anchor(picked) or _anchor(window)
        value, key = parsed.value, parsed.key
        if anchor is not None:
            value = resolve_relative_dates(value, anchor.date())
            key = resolve_relative_dates(key, anchor.date())
        detail = dict(parsed.detail)
        if "reasoning" in detail and anchor is not None:
            detail["reasoning"] = resolve_relative_dates(detail["reasoning"], anchor.date())
        item_info: dict[str, Any] = dict(info or {})
        if detail:
            item_info[DETAIL_KEY] = detail
        first = picked[0]
        return MemoryItem(
            user_id=scope.user_id,
            cube_id=scope.cube_id,
            agent_id=scope.agent_id,
            app_id=scope.app_id,
            conversation_id=first.conversation_id,
            memory_type=parsed.memory_type,
            key=key,
            value=value,
            tags=list(dict.fromkeys(["mode:fine", *parsed.tags, *tags])),
            info=item_info,
            confidence=parsed.confidence,
            sources=[_source(m) for m in picked],
            mode=MemoryMode.FINE,
            event_time=first.event_time or first.create_time,
        )


def _source(msg: Message) -> Source:
    text = message_text(msg)
    return Source(
        type="chat",
        message_id=msg.message_id or msg.id,
        role=msg.role.value,
        chat_time=msg.chat_time,
        content=text[:SOURCE_CHARS],
    )

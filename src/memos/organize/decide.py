"""Ask the LLM what each new memory does to the existing ones.

One call per batch: every new memory that has neighbours is listed with them
under short labels (E1, E2, ...), because small models copy short labels
reliably and mangle UUIDs. The reply is schema-constrained and parsed
tolerantly; an unusable reply gets one repair round. Anything the model gets
wrong (unknown label, missing merged text, no decision) degrades to "add",
which keeps the new memory and loses nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from memos.domain.models import MemoryItem
from memos.errors import MemosError
from memos.llm.base import LLM, ChatMessage
from memos.llm.jsonreply import BadOutput, read_object
from memos.organize import prompts
from memos.reader.prompts import detect_language

logger = logging.getLogger(__name__)

Action = Literal["add", "merge", "update", "duplicate"]
ACTIONS: tuple[Action, ...] = ("add", "merge", "update", "duplicate")


class OrganizeError(MemosError):
    """The evolution LLM gave no usable decisions, even after one repair (50143)."""

    code = 50143
    http_status = 502


@dataclass(frozen=True)
class Neighbour:
    """An existing memory close to a new one, with their cosine."""

    item: MemoryItem
    cosine: float


@dataclass(frozen=True)
class Decision:
    action: Action
    target: str | None = None  # the existing memory's id (never a label)
    merged_value: str = ""
    reason: str = ""

    @classmethod
    def add(cls, reason: str = "") -> Decision:
        return cls("add", reason=reason)


def decision_schema(
    numbers: Sequence[int] | None = None, labels: Sequence[str] | None = None
) -> dict[str, Any]:
    """The reply's JSON schema; ``numbers`` and ``labels`` pin what may be named.

    Pinned, a grammar-constrained model cannot invent memory numbers or labels,
    nor ramble through more decisions than there are new memories.
    """
    new: dict[str, Any] = {"type": "integer"}
    target: dict[str, Any] = {"type": "string"}
    if numbers:
        new = {"type": "integer", "enum": list(numbers)}
    if labels:
        target = {"type": "string", "enum": ["", *labels]}
    entry = {
        "type": "object",
        "properties": {
            "new": new,
            "action": {"type": "string", "enum": list(ACTIONS)},
            "target": target,
            "merged_value": {"type": "string"},
            "reason": {"type": "string"},
        },
        "required": ["new", "action", "target", "merged_value", "reason"],
        "additionalProperties": False,
    }
    decisions: dict[str, Any] = {"type": "array", "items": entry}
    if numbers:
        decisions["maxItems"] = len(numbers)
    return {
        "type": "object",
        "properties": {"decisions": decisions},
        "required": ["decisions"],
        "additionalProperties": False,
    }


def _when(item: MemoryItem) -> str:
    moment = item.event_time or item.create_time
    return moment.strftime("%Y-%m-%d")


def build_listing(
    new: Sequence[MemoryItem], neighbours: Sequence[Sequence[Neighbour]]
) -> tuple[str, dict[str, str]]:
    """The prompt's listing and the label -> memory id map it uses."""
    lines: list[str] = []
    labels: dict[str, str] = {}
    for i, (item, near) in enumerate(zip(new, neighbours, strict=True), 1):
        if not near:
            continue
        lines.append(f"NEW {i} ({_when(item)}): {item.value}")
        for n in near:
            label = next((k for k, v in labels.items() if v == n.item.id), None)
            if label is None:
                label = f"E{len(labels) + 1}"
                labels[label] = n.item.id
            lines.append(f"  EXISTING {label} ({_when(n.item)}): {n.item.value}")
    return "\n".join(lines), labels


def parse_decisions(
    raw: str,
    n_new: int,
    labels: dict[str, str],
    allowed: Sequence[set[str]],
) -> dict[int, Decision]:
    """Decisions by 1-based new-memory number; BadOutput when the reply is unusable.

    ``allowed[i-1]`` holds the ids new memory ``i`` may target: a decision that
    names another memory's neighbour is a model mix-up and becomes "add".
    """
    obj = read_object(raw)
    entries = obj.get("decisions")
    if not isinstance(entries, list):
        raise BadOutput('the JSON object has no "decisions" list')
    out: dict[int, Decision] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        number = entry.get("new")
        if isinstance(number, str) and number.strip().isdecimal():
            number = int(number.strip())
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= n_new:
            continue
        if number in out:
            continue
        action = entry.get("action")
        if action not in ACTIONS or action == "add":
            out[number] = Decision.add(_str(entry.get("reason")))
            continue
        label = _str(entry.get("target")).upper().strip("[]() ")
        target = labels.get(label)
        if target is None or target not in allowed[number - 1]:
            out[number] = Decision.add(f"unknown target {label!r}")
            continue
        merged = _str(entry.get("merged_value"))
        chosen: Action = "update" if action == "update" else "merge"
        if action == "duplicate" or not merged and chosen == "merge":
            chosen = "duplicate"  # nothing to merge in: keep the old text, take the sources
        out[number] = Decision(chosen, target, merged, _str(entry.get("reason")))
    return out


def _str(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


class Organizer:
    """Decides add / merge / update / duplicate for new memories with ``llm``."""

    def __init__(self, llm: LLM, *, max_tokens: int | None = None) -> None:
        self.llm = llm
        self.max_tokens = max_tokens

    def decide(
        self, new: Sequence[MemoryItem], neighbours: Sequence[Sequence[Neighbour]]
    ) -> list[Decision]:
        """One decision per new memory; those without neighbours are "add" without a call.

        Raises OrganizeError when the LLM's reply stays unusable after one repair
        (callers then add everything and record why).
        """
        decisions = [Decision.add("no similar memory") for _ in new]
        asked = [i for i, near in enumerate(neighbours) if near]
        if not asked:
            return decisions
        listing, labels = build_listing(new, neighbours)
        allowed = [{n.item.id for n in near} for near in neighbours]
        lang = detect_language(listing)
        chat: list[ChatMessage] = [
            {"role": "system", "content": prompts.SYSTEM[lang]},
            {"role": "user", "content": prompts.USER[lang].format(listing=listing)},
        ]
        schema = decision_schema([i + 1 for i in asked], list(labels))
        raw = self.llm.chat(chat, json_schema=schema, max_tokens=self.max_tokens)
        try:
            parsed = parse_decisions(raw, len(new), labels, allowed)
        except BadOutput as first:
            logger.warning(
                "evolution with %s: unusable reply (%s); asking once to repair",
                self.llm.name,
                first,
            )
            chat += [
                {"role": "assistant", "content": raw},
                {"role": "user", "content": prompts.REPAIR[lang].format(reason=first)},
            ]
            raw = self.llm.chat(chat, json_schema=schema, max_tokens=self.max_tokens)
            try:
                parsed = parse_decisions(raw, len(new), labels, allowed)
            except BadOutput as second:
                raise OrganizeError(
                    f"evolution decisions unusable: {second} (after one repair retry)",
                    data={"raw_output": raw[:2000]},
                ) from None
        for i in asked:
            decisions[i] = parsed.get(i + 1, Decision.add("no decision returned"))
        return decisions

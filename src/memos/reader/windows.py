"""Splitting a long chat into windows the fine reader's model can take in one call.

Windows are cut between *units*, not messages: a tool call and the tool results
answering it form one unit, because a result read without its call (or the
reverse) teaches the model nothing. Each window after the first starts with
the tail of the previous one (a message or two) so a fact stated across the
cut is seen whole by at least one call; the merge later drops the duplicates
this produces. Costs are the transcript lines' token estimates
(:func:`memos.text.tokens.count_tokens`), the same measure the settings use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from memos.domain.models import MemoryItem, Message, Role
from memos.text.tokens import count_tokens, cut_by_tokens

OVERLAP_MESSAGES = 2
TRUNCATED = " …[truncated]"
# The fewest tokens a truncated message keeps, so a crowded tool unit still says something.
MIN_KEEP_TOKENS = 16


@dataclass(frozen=True)
class Window:
    """Positions (into the reader's message list) of the messages one LLM call sees.

    The first ``overlap`` positions repeat the end of the previous window.
    """

    positions: tuple[int, ...]
    overlap: int = 0


def tool_units(messages: Sequence[Message]) -> list[list[int]]:
    """Positions grouped so every tool result shares a unit with the call it answers.

    A tool message joins the latest earlier message whose ``tool_calls`` carry
    its ``tool_call_id`` (without an id: the latest earlier message with any
    tool call), together with everything in between, so units stay contiguous.
    """
    joined = [False] * len(messages)  # joined[i]: message i belongs with message i - 1
    for pos, msg in enumerate(messages):
        if msg.role != Role.TOOL:
            continue
        call = _calling_position(messages, pos)
        for between in range(call + 1, pos + 1) if call is not None else ():
            joined[between] = True
    units: list[list[int]] = []
    for pos in range(len(messages)):
        if joined[pos] and units:
            units[-1].append(pos)
        else:
            units.append([pos])
    return units


def _calling_position(messages: Sequence[Message], tool_pos: int) -> int | None:
    wanted = messages[tool_pos].tool_call_id
    for pos in range(tool_pos - 1, -1, -1):
        calls = messages[pos].tool_calls or []
        if not calls:
            continue
        if wanted is None or any(c.get("id") == wanted for c in calls):
            return pos
    return None


def unit_caps(costs: Sequence[int], budget: int) -> list[int]:
    """Per-message token caps that fit a unit into ``budget``, sharing it fairly.

    Messages cheaper than an even share keep all their tokens and leave the
    rest to the larger ones (water filling); a cap never goes below
    ``MIN_KEEP_TOKENS``.
    """
    caps = [0] * len(costs)
    left = budget
    order = sorted(range(len(costs)), key=lambda i: costs[i])
    for done, i in enumerate(order):
        share = max(left // (len(costs) - done), MIN_KEEP_TOKENS)
        caps[i] = min(costs[i], share)
        left -= caps[i]
    return caps


def truncate(text: str, max_tokens: int) -> str:
    """``text`` cut to about ``max_tokens`` with a visible marker (unchanged if it fits)."""
    if count_tokens(text) <= max_tokens:
        return text
    keep = max(max_tokens - count_tokens(TRUNCATED), 1)
    pieces = cut_by_tokens(text, keep)
    return (pieces[0] if pieces else "") + TRUNCATED


def split_windows(
    costs: Sequence[int],
    units: Sequence[Sequence[int]],
    budget: int,
    overlap_messages: int = OVERLAP_MESSAGES,
) -> list[Window]:
    """Greedy windows of whole units, each within ``budget`` tokens where the units allow.

    A unit larger than the budget gets a window of its own (the caller has
    already truncated its messages as far as it will). The overlap is the
    longest run of trailing units, new in the window just closed, with at most
    ``overlap_messages`` messages and half the budget; it is dropped when the
    next unit would not fit beside it.
    """
    unit_cost = [sum(costs[p] for p in unit) for unit in units]
    windows: list[Window] = []
    current: list[int] = []  # unit indices
    carried = 0  # leading units of ``current`` repeated from the previous window
    size = 0
    for u, cost in enumerate(unit_cost):
        if current and size + cost > budget:
            windows.append(_window(units, current, carried))
            current = _overlap(units, unit_cost, current[carried:], budget, overlap_messages)
            carried, size = len(current), sum(unit_cost[i] for i in current)
            if current and size + cost > budget:
                current, carried, size = [], 0, 0
        current.append(u)
        size += cost
    if len(current) > carried:
        windows.append(_window(units, current, carried))
    return windows


def _window(units: Sequence[Sequence[int]], chosen: list[int], carried: int) -> Window:
    positions = tuple(p for u in chosen for p in units[u])
    overlap = sum(len(units[u]) for u in chosen[:carried])
    return Window(positions=positions, overlap=overlap)


def _overlap(
    units: Sequence[Sequence[int]],
    unit_cost: Sequence[int],
    fresh: list[int],
    budget: int,
    max_messages: int,
) -> list[int]:
    tail: list[int] = []
    messages = tokens = 0
    for u in reversed(fresh):
        messages += len(units[u])
        tokens += unit_cost[u]
        if messages > max_messages or tokens > budget // 2:
            break
        tail.insert(0, u)
    return tail


def merge_items(items: Sequence[MemoryItem], order: Mapping[str, int]) -> list[MemoryItem]:
    """``items`` with exact duplicates folded into the first: same type, same text.

    Text compares case- and spacing-insensitively. The survivor gets the union
    of the sources (in ``order``, a message id's position in the chat) and tags
    and the higher confidence, so an overlap's repeat loses nothing.
    """
    kept: dict[tuple[str, str], MemoryItem] = {}
    for item in items:
        key = (item.memory_type.value, " ".join(item.value.casefold().split()))
        first = kept.get(key)
        if first is None:
            kept[key] = item
            continue
        by_ref = {s.message_id: s for s in [*item.sources, *first.sources]}
        sources = sorted(by_ref.values(), key=lambda s: order.get(s.message_id or "", len(order)))
        kept[key] = first.model_copy(
            update={
                "sources": sources,
                "tags": list(dict.fromkeys([*first.tags, *item.tags])),
                "confidence": max(first.confidence, item.confidence),
            }
        )
    return list(kept.values())

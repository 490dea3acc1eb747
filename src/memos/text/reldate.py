"""Turn relative day words into absolute dates, given the day a message was sent.

The fine reader asks the LLM for absolute dates; this deterministic pass fixes
what a model leaves behind. It knows only unambiguous day words: "yesterday",
"today", "tonight", "tomorrow", "last <weekday>" (the latest such day before the
anchor), "next <weekday>" (the first such day after it), and 前天/昨天/今天/
明天/后天. Everything else is left as written.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY_OFFSETS = {"yesterday": -1, "today": 0, "tonight": 0, "tomorrow": 1}
_PREPOSITIONS = {"on", "since", "until", "till", "by", "from", "before", "after", "of", "to"}
_EN = re.compile(
    r"\b(?:(?P<day>yesterday|today|tonight|tomorrow)|"
    r"(?P<dir>last|next)\s+(?P<wd>" + "|".join(_WEEKDAYS) + r"))\b",
    re.IGNORECASE,
)
_ZH_OFFSETS = {"前天": -2, "昨天": -1, "今天": 0, "明天": 1, "后天": 2}
_ZH = re.compile("|".join(_ZH_OFFSETS))
_PREV_WORD = re.compile(r"(\w+)\s*$")


def _weekday(anchor: date, name: str, direction: str) -> date:
    target = _WEEKDAYS.index(name.lower())
    if direction.lower() == "next":
        return anchor + timedelta(days=(target - anchor.weekday() - 1) % 7 + 1)
    return anchor - timedelta(days=(anchor.weekday() - target - 1) % 7 + 1)


def resolve_relative_dates(text: str, anchor: date) -> str:
    """``text`` with each known relative day word replaced by its ISO date."""

    def english(match: re.Match[str]) -> str:
        word = match.group("day")
        if word:
            day = anchor + timedelta(days=_DAY_OFFSETS[word.lower()])
        else:
            day = _weekday(anchor, match.group("wd"), match.group("dir"))
        before = _PREV_WORD.search(text[: match.start()])
        if before and before.group(1).lower() in _PREPOSITIONS:
            return day.isoformat()
        prefix = "On" if match.group(0)[0].isupper() else "on"
        return f"{prefix} {day.isoformat()}"

    def chinese(match: re.Match[str]) -> str:
        day = anchor + timedelta(days=_ZH_OFFSETS[match.group(0)])
        return f"{day.year}年{day.month}月{day.day}日"

    return _ZH.sub(chinese, _EN.sub(english, text))

"""The time a search query points at: "in May 2023", "last year", "3 weeks ago", "去年".

Search uses the window as a soft preference (memories whose event time falls
inside rank higher) and to decide which version of a changing fact to put
first: with no window the newest, with a window the one inside it. It is never
a hard filter, because the words that name a time are often about something
else ("the 2023 marathon" may have been talked about in 2024).

Relative phrases are read against ``now`` (the request time). Phrases that
name an event instead of a date ("before the move") are not resolved: that
needs the event's own memory, which is the fine pipeline's job.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
MONTHS.update({name.lower(): i for i, name in enumerate(calendar.month_abbr) if name})
MONTHS["sept"] = 9
_MONTH = (
    r"(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_YEAR = r"((?:19|20)\d{2})"
_NUMBER_WORDS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
}  # fmt: skip
_UNIT = r"(day|week|month|year)s?"
_COUNT = r"(\d{1,3}|a|an|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)"


@dataclass(frozen=True)
class TimeWindow:
    """A half-open interval [start, end); either side may be open."""

    start: datetime | None
    end: datetime | None
    phrase: str
    # "Where did I live before?": no date, but the query asks for an earlier
    # state, so a superseded version goes ahead of the current one.
    previous: bool = False

    def contains(self, moment: datetime) -> bool:
        when = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        if self.start is not None and when < self.start:
            return False
        return self.end is None or when < self.end

    @property
    def in_past(self) -> bool:
        """Whether the window ends before the request (the query looks back)."""
        return self.end is not None


def _day(y: int, m: int, d: int) -> tuple[datetime, datetime] | None:
    try:
        start = datetime(y, m, d, tzinfo=UTC)
    except ValueError:
        return None
    return start, start + timedelta(days=1)


def _month(y: int, m: int) -> tuple[datetime, datetime]:
    start = datetime(y, m, 1, tzinfo=UTC)
    end = datetime(y + 1, 1, 1, tzinfo=UTC) if m == 12 else datetime(y, m + 1, 1, tzinfo=UTC)
    return start, end


def _year(y: int) -> tuple[datetime, datetime]:
    return datetime(y, 1, 1, tzinfo=UTC), datetime(y + 1, 1, 1, tzinfo=UTC)


def _week(moment: datetime) -> tuple[datetime, datetime]:
    start = datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
    start -= timedelta(days=start.weekday())
    return start, start + timedelta(days=7)


def _shift_months(moment: datetime, months: int) -> tuple[int, int]:
    index = moment.year * 12 + (moment.month - 1) - months
    return index // 12, index % 12 + 1


def _period(unit: str, back: int, now: datetime) -> tuple[datetime, datetime]:
    """The calendar ``unit`` that lies ``back`` units before the one holding ``now``."""
    if unit == "day":
        return _shifted_day(now, back)
    if unit == "week":
        return _week(now - timedelta(weeks=back))
    if unit == "month":
        return _month(*_shift_months(now, back))
    return _year(now.year - back)


def _shifted_day(now: datetime, back: int) -> tuple[datetime, datetime]:
    start = datetime(now.year, now.month, now.day, tzinfo=UTC) - timedelta(days=back)
    return start, start + timedelta(days=1)


def _count(word: str) -> int:
    return int(word) if word.isdigit() else _NUMBER_WORDS[word]


_ISO = re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b")
_DMY = re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}\.?,?\s+{_YEAR}\b", re.I)
_MDY = re.compile(rf"\b{_MONTH}\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+{_YEAR}\b", re.I)
_MY = re.compile(rf"\b{_MONTH}\.?,?\s+(?:of\s+)?{_YEAR}\b", re.I)
_Y = re.compile(
    rf"\b(?:in|during|of|from|since|before|after|until|by)\s+(?:the\s+year\s+)?{_YEAR}\b"
    rf"|^{_YEAR}\b|\b{_YEAR}$",
    re.I,
)
_M_ALONE = re.compile(rf"\b(?:in|during|since|before|after|until|last)\s+{_MONTH}\b", re.I)
_AGO = re.compile(rf"\b{_COUNT}\s+{_UNIT}\s+ago\b", re.I)
_LAST_N = re.compile(rf"\b(?:last|past|previous)\s+{_COUNT}\s+{_UNIT}\b", re.I)
_LAST = re.compile(r"\b(last|this|previous|past)\s+(week|month|year)\b", re.I)
_TODAY = re.compile(r"\b(today|yesterday|tonight|this morning)\b", re.I)
_DAY_BEFORE = re.compile(r"\bthe day before yesterday\b", re.I)
_ZH_YMD = re.compile(r"(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*[日号]")
_ZH_YM = re.compile(r"(\d{4})\s*年\s*(\d{1,2})\s*月")
_ZH_Y = re.compile(r"(\d{4})\s*年")
_ZH_AGO = re.compile(
    r"(\d{1,3}|[一两二三四五六七八九十])\s*(天|周|个?星期|个月|年)(?:前|以前|之前)"
)
_ZH_WORDS = {
    "前天": ("day", 2), "昨天": ("day", 1), "今天": ("day", 0),
    "上周": ("week", 1), "上个星期": ("week", 1), "上星期": ("week", 1),
    "本周": ("week", 0), "这周": ("week", 0),
    "上个月": ("month", 1), "上月": ("month", 1), "本月": ("month", 0), "这个月": ("month", 0),
    "前年": ("year", 2), "去年": ("year", 1), "今年": ("year", 0),
}  # fmt: skip
_ZH_UNITS = {
    "天": "day", "周": "week", "星期": "week", "个星期": "week", "个月": "month", "年": "year",
}  # fmt: skip
_ZH_DIGITS = {
    "一": 1,
    "两": 2,
    "二": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
    "十": 10,
}
_BEFORE = re.compile(r"\b(before|until|prior to|by)\s*$|(之前|以前)$", re.I)
_PREPOSITIONS = {"before", "until", "by", "after", "since"}
_AFTER = re.compile(r"\b(after|since)\s*$", re.I)


def _absolute(query: str, now: datetime) -> tuple[tuple[datetime, datetime], re.Match[str]] | None:
    for pattern in (_ISO, _ZH_YMD):
        for m in pattern.finditer(query):
            got = _day(int(m[1]), int(m[2]), int(m[3]))
            if got:
                return got, m
    for m in _DMY.finditer(query):
        got = _day(int(m[3]), MONTHS[m[2].lower()], int(m[1]))
        if got:
            return got, m
    for m in _MDY.finditer(query):
        got = _day(int(m[3]), MONTHS[m[1].lower()], int(m[2]))
        if got:
            return got, m
    for m in _MY.finditer(query):
        return _month(int(m[2]), MONTHS[m[1].lower()]), m
    for m in _ZH_YM.finditer(query):
        if 1 <= int(m[2]) <= 12:
            return _month(int(m[1]), int(m[2])), m
    for m in _ZH_Y.finditer(query):
        return _year(int(m[1])), m
    for m in _Y.finditer(query):
        year = next(g for g in m.groups() if g)
        return _year(int(year)), m
    for m in _M_ALONE.finditer(query):
        month = MONTHS[m[1].lower()]
        year = now.year if month < now.month else now.year - 1
        return _month(year, month), m
    return None


def _relative(query: str, now: datetime) -> tuple[tuple[datetime, datetime], re.Match[str]] | None:
    if m := _DAY_BEFORE.search(query):
        return _shifted_day(now, 2), m
    if m := _LAST_N.search(query):
        n, unit = _count(m[1].lower()), m[2].lower()
        span = {"day": 1, "week": 7, "month": 31, "year": 366}[unit] * n
        return (now - timedelta(days=span), now + timedelta(seconds=1)), m
    if m := _AGO.search(query):
        return _period(m[2].lower(), _count(m[1].lower()), now), m
    if m := _LAST.search(query):
        back = 0 if m[1].lower() == "this" else 1
        return _period(m[2].lower(), back, now), m
    if m := _TODAY.search(query):
        return _shifted_day(now, 1 if m[1].lower() == "yesterday" else 0), m
    if m := _ZH_AGO.search(query):
        n = int(m[1]) if m[1].isdigit() else _ZH_DIGITS[m[1]]
        return _period(_ZH_UNITS[m[2]], n, now), m
    for word, (unit, back) in _ZH_WORDS.items():
        at = query.find(word)
        if at >= 0:
            return _period(unit, back, now), _literal(query, at, word)
    return None


def _literal(query: str, at: int, word: str) -> re.Match[str]:
    match = re.compile(re.escape(word)).search(query, at)
    assert match is not None
    return match


def parse_query_window(query: str, now: datetime | None = None) -> TimeWindow | None:
    """The time window a query names, or None when it names none."""
    when = now or datetime.now(UTC)
    found = _absolute(query, when) or _relative(query, when)
    if found is None:
        return None
    (start, end), match = found
    # A preposition may be part of the match ("before 2023") or precede it.
    phrase = match.group(0)
    lead = phrase.split()[0].lower() if phrase.split() else ""
    before = query[: match.start()] + (lead if lead in _PREPOSITIONS else "")
    after = query[match.end() :]
    if _BEFORE.search(before) or re.match(r"\s*(之前|以前)", after):
        return TimeWindow(None, start, match.group(0))
    if _AFTER.search(before) or re.match(r"\s*(之后|以后)", after):
        since = before.lower().rstrip().endswith("since")
        return TimeWindow(start if since else end, None, match.group(0))
    return TimeWindow(start, end, match.group(0))


_PREVIOUS = re.compile(
    r"\b(?:before|previously|formerly|used to|earlier|originally|at first|back then"
    r"|in the past|former|old|prior)\b[^a-z]*$"
    r"|\b(?:used? to|previously|formerly|originally|former|in the past|my old)\b"
    r"|以前|之前|曾经|原来|过去",
    re.I,
)


def previous_state_window(query: str, now: datetime | None = None) -> TimeWindow | None:
    """A window for queries that ask for an earlier state without naming a date.

    "Where did I live before?", "what did I use to drink", "我以前住哪": the
    window is everything up to now, marked ``previous`` so search puts a
    superseded version of a changing fact ahead of the current one. A trailing
    "before" counts; "before the move" (an event, not a state) does not.
    """
    m = _PREVIOUS.search(query.strip().rstrip("?？.!。 "))
    if m is None:
        return None
    return TimeWindow(None, now or datetime.now(UTC), m.group(0).strip(), previous=True)

"""Read the ``chat_time`` strings clients send into UTC datetimes.

The API accepts "a structured timestamp or Chinese text"; we read ISO 8601,
``YYYY-MM-DD HH:MM:SS``, epoch numbers, LoCoMo's ``1:56 pm on 8 May, 2023`` and
``2025年9月12日 08:00`` (a trailing ``UTC``/``GMT``, as the Coze plugin writes,
is read as UTC). Anything else reads as None; the service refuses it at write
time (40000), so a stored time is always one this module can read back.

Only instants from year ``MIN_YEAR`` to ``MAX_YEAR`` are accepted: every store
and renderer can hold those (a ``9999-12-31T23:59:59-23:59`` is year 10000 in UTC).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

MIN_YEAR = 1900
MAX_YEAR = 2200
_MIN_TS = datetime(MIN_YEAR, 1, 1, tzinfo=UTC).timestamp()
_MAX_TS = datetime(MAX_YEAR + 1, 1, 1, tzinfo=UTC).timestamp()

_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y/%m/%d",
    "%I:%M %p on %d %B, %Y",
    "%I:%M %p on %d %b, %Y",
    "%d %B %Y",
    "%d %B, %Y",
    "%B %d, %Y",
)
_ZH = re.compile(
    r"(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*[日号]?"
    r"(?:\s*(\d{1,2})\s*[:：点时]\s*(\d{1,2})?\s*分?)?"
)


_UTC_SUFFIX = re.compile(r"\s+(?:UTC|GMT|Z)$", re.IGNORECASE)


def epoch_seconds(value: int | float) -> float:
    """Epoch milliseconds (the cloud examples) or seconds, as seconds."""
    try:
        seconds = float(value)
    except OverflowError:  # an integer beyond any float
        return float("inf") if value > 0 else float("-inf")
    return seconds / 1000.0 if abs(seconds) > 1e11 else seconds


def in_range(seconds: float) -> bool:
    """Whether an epoch instant lies in the accepted years (finite, MIN_YEAR..MAX_YEAR)."""
    return _MIN_TS <= seconds < _MAX_TS


def parse_chat_time(value: str | int | float | None) -> datetime | None:
    """The UTC instant ``value`` names, or None when it names none in the accepted years."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = epoch_seconds(value)
        if not in_range(seconds):  # also NaN and infinities
            return None
        return datetime.fromtimestamp(seconds, UTC)
    parsed = _parse_text(value)
    if parsed is None:
        return None
    try:
        utc = parsed.astimezone(UTC)
    except (OverflowError, ValueError):  # an offset pushes it past year 9999
        return None
    return utc if MIN_YEAR <= utc.year <= MAX_YEAR else None


def _parse_text(value: str) -> datetime | None:
    text = _UTC_SUFFIX.sub("", value.strip())
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except ValueError:
        pass
    for fmt in _FORMATS:
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    match = _ZH.search(text)
    if match:
        year, month, day, hour, minute = match.groups()
        try:
            return datetime(
                int(year), int(month), int(day), int(hour or 0), int(minute or 0), tzinfo=UTC
            )
        except ValueError:
            return None
    return None

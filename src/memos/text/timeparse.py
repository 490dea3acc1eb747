"""Read the ``chat_time`` strings clients send into UTC datetimes.

The API accepts "a structured timestamp or Chinese text"; we read ISO 8601,
``YYYY-MM-DD HH:MM:SS``, epoch numbers, LoCoMo's ``1:56 pm on 8 May, 2023`` and
``2025年9月12日 08:00``. Anything else is kept verbatim on the message and the
memory falls back to ingestion time.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

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


def parse_chat_time(value: str | int | float | None) -> datetime | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = value / 1000.0 if value > 1e11 else float(value)
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    text = value.strip()
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

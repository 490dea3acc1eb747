"""Which MemOS error a request body that fails to parse deserves (40002 or 40000).

Shared by the HTTP routers and the in-process SDK so both answer alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from memos.errors import InvalidParameter, MemosError, MissingField


def validation_error(errors: Sequence[Any]) -> MemosError:
    first = errors[0] if errors else {}
    loc = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
    kind = first.get("type", "")
    if kind == "json_invalid":
        return InvalidParameter("request body is not valid JSON")
    if kind == "missing":
        return MissingField(f"{loc} is required")
    return InvalidParameter(f"invalid value for {loc}: {first.get('msg', 'invalid')}")

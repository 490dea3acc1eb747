"""Make text from outside the API (model replies) safe to store and render.

Request bodies with lone surrogates are refused (``service/validation``), but a
model may write ``"\\ud800"`` in the JSON it returns, and that string would
then fail every later read of the memory it became (UTF-8 cannot encode it).
Text a model produced is scrubbed instead: each lone surrogate becomes U+FFFD.
"""

from __future__ import annotations

from typing import Any


def scrub(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD (pairs are joined)."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def scrub_json(value: Any) -> Any:
    """``scrub`` applied to every string (keys included) of a decoded JSON value."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, list):
        return [scrub_json(v) for v in value]
    if isinstance(value, dict):
        return {scrub(k): scrub_json(v) for k, v in value.items()}
    return value

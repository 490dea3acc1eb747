"""Read the JSON a chat model wrote: one lenient reader for every caller.

Schema-constrained decoding still leaves replies that ``json.loads`` refuses,
and which one depends on the model and even on the CPU it runs on (a small
model's greedy output differs between AVX2 and AVX-512 builds). The reader
accepts what models commonly write around or inside otherwise valid JSON:

* raw control characters (newlines, tabs) inside strings;
* code fences (```json ... ```): JSON inside one is tried first;
* prose before and after the JSON, and a leading byte-order mark;
* trailing commas before ``}`` or ``]``.

It refuses everything else: a value cut off before its last bracket, broken
syntax inside the brackets, a reply with no JSON at all, or JSON of the wrong
kind. It never salvages an inner piece of a broken outer value, so a reply
that ran out of tokens stays a failure the callers repair or record.

Candidates are the top-level bracketed spans of the text, found by a scanner
that knows JSON strings (a ``}`` or a fence inside a string closes nothing);
the first span that decodes to the wanted kind wins, fenced spans first.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from memos.text.unicode import scrub_json

_FENCE = "```"
_OPEN, _CLOSE = "{[", "}]"
_DECODER = json.JSONDecoder(strict=False)  # strict=False: raw control characters in strings
_T = TypeVar("_T", dict[str, Any], list[Any])


class BadOutput(ValueError):
    """The model's reply is not usable JSON of the expected shape; the message says why."""


def read_object(reply: str) -> dict[str, Any]:
    """The first JSON object in ``reply``; BadOutput when there is none that parses."""
    return _read(reply, dict, "object")


def read_array(reply: str) -> list[Any]:
    """The first JSON array in ``reply``; BadOutput when there is none that parses."""
    return _read(reply, list, "array")


def _read(reply: str, kind: type[_T], name: str) -> _T:
    spans, cut_off = _spans(reply.lstrip("\ufeff").strip())
    first_error: str | None = None
    for _, span in sorted(spans, key=lambda s: not s[0]):  # fenced spans first
        try:
            value = _DECODER.decode(span)
        except json.JSONDecodeError as exc:
            first_error = first_error or f"invalid JSON ({exc.msg} at character {exc.pos})"
            continue
        except RecursionError:
            first_error = first_error or "the reply's JSON is nested too deeply"
            continue
        if isinstance(value, kind):
            return scrub_json(value)  # type: ignore[no-any-return]
        first_error = first_error or f"the reply's JSON is not an {name}"
    if cut_off:
        raise BadOutput(f"the reply contains no complete JSON {name} (its brackets never close)")
    raise BadOutput(first_error or f"the reply contains no JSON {name}")


def _spans(text: str) -> tuple[list[tuple[bool, str]], bool]:
    """The top-level ``{...}`` and ``[...]`` of ``text``, each with whether a fence holds it.

    Trailing commas are dropped from each span. The flag says a span never
    closes (the scan stops there: everything after its opening bracket is inside
    it). Quotes and fences count only outside spans, so an apostrophe in the
    prose or a fence inside a JSON string changes nothing.
    """
    spans: list[tuple[bool, str]] = []
    fenced = False
    i, n = 0, len(text)
    while i < n:
        if text.startswith(_FENCE, i):
            fenced = not fenced
            i += len(_FENCE)
        elif text[i] in _OPEN:
            span, i = _span(text, i)
            if span is None:
                return spans, True
            spans.append((fenced, span))
        else:
            i += 1
    return spans, False


def _span(text: str, i: int) -> tuple[str | None, int]:
    """The bracketed value opening at ``i`` and the index after it; None if it never closes."""
    out: list[str] = []
    depth, in_string, escaped = 0, False, False
    n = len(text)
    while i < n:
        c = text[i]
        i += 1
        if in_string:
            out.append(c)
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
            continue
        if c == "," and _closes_next(text, i):
            continue  # a trailing comma: ``[1, 2,]`` reads as ``[1, 2]``
        out.append(c)
        if c == '"':
            in_string = True
        elif c in _OPEN:
            depth += 1
        elif c in _CLOSE:
            depth -= 1
            if depth == 0:
                return "".join(out), i
    return None, i


def _closes_next(text: str, j: int) -> bool:
    """Is the next non-blank character from ``j`` on a closing bracket?"""
    while j < len(text) and text[j] in " \t\r\n":
        j += 1
    return j < len(text) and text[j] in _CLOSE

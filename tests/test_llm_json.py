"""The lenient reader of LLM JSON (memos.llm.jsonreply), on fixed strings.

What a model writes varies with the model and even with the CPU it runs on,
so these replies are the shapes seen in practice, written out by hand: each
must either read as the JSON inside it or be refused, never half-read.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memos.llm.jsonreply import BadOutput, read_array, read_object
from memos.organize.decide import parse_decisions
from memos.rerank.llm import parse_ranking

# The reply that broke evolution on an AVX-512 machine: raw newline and tab in strings.
CONTROL = '{"decisions": [{"new": 1, "action": "add", "target": "", "merged_value": "",\n'
CONTROL += '"reason": "The user moved.\nNew city:\tShanghai."}]}'


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        # raw control characters inside strings
        ('{"a": "line one\nline two"}', {"a": "line one\nline two"}),
        ('{"a": "tab\there", "b": "cr\rbell\x07"}', {"a": "tab\there", "b": "cr\rbell\x07"}),
        # code fences, with or without a language, and prose around them
        ('```json\n{"a": 1}\n```', {"a": 1}),
        ('```\n{"a": 1}\n```', {"a": 1}),
        ('Sure! Here it is:\n```JSON\n{"a": [1]}\n```\nHope that helps.', {"a": [1]}),
        # the fenced block wins over a JSON-looking example in the prose
        ('Format: {"x": 0}\n```json\n{"a": 2}\n```', {"a": 2}),
        # a fence inside a string (raw newlines and all) is not one
        ('{"a": "x\n```json\n{}\n```"}', {"a": "x\n```json\n{}\n```"}),
        # an unclosed fence still holds the JSON
        ('```json\n{"a": 3}', {"a": 3}),
        # prose before and after, braces and quotes in the prose
        ('noise {"a": {"b": 1}} trailing', {"a": {"b": 1}}),
        ('It\'s "here": {"a": 1} (and that\'s all }', {"a": 1}),
        ('The answer is {"a": 1}. Done :}', {"a": 1}),
        # braces, brackets, quotes and commas inside strings close nothing
        ('{"a": "}{ ][ ,} \\" {"}', {"a": '}{ ][ ,} " {'}),
        ('{"a": "x,}", "b": [1, 2]}', {"a": "x,}", "b": [1, 2]}),
        # a byte-order mark, surrounding blanks
        ('\ufeff {"a": 1}\n', {"a": 1}),
        # trailing commas before } or ]
        ('{"a": [1, 2,], "b": {"c": 3,},}', {"a": [1, 2], "b": {"c": 3}}),
        ('{"a": [1,\n  ]\n}', {"a": [1]}),
        # a bracketed aside in the prose that is not JSON is skipped
        ('[see below] {"a": 1}', {"a": 1}),
        # unicode escapes and non-ASCII text
        ('{"a": "caf\\u00e9 杭州"}', {"a": "café 杭州"}),
    ],
)
def test_read_object_accepts_what_models_write(reply: str, expected: dict[str, Any]) -> None:
    assert read_object(reply) == expected


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("", "no JSON object"),
        ("I cannot help with that.", "no JSON object"),
        # cut off: no inner piece of the broken value is salvaged
        ('{"memories": [{"value": "cut', "no complete JSON object"),
        ('{"decisions": [{"new": 1, "action": "add"}, {"new": 2', "no complete JSON object"),
        ('{"memories": [}', "no complete JSON object"),
        ('```json\n{"a": [1, 2\n```', "no complete JSON object"),
        # broken syntax inside complete brackets
        ('{"a": 1 "b": 2}', "invalid JSON"),
        ("{'a': 1}", "invalid JSON"),
        ('{"a": undefined}', "invalid JSON"),
        ('{"a": [1,, 2]}', "invalid JSON"),
        ('{"a": "bad \\q escape"}', "invalid JSON"),
        # JSON of the wrong kind
        ("[1, 2]", "not an object"),
        ('"just a string"', "no JSON object"),
        ("42", "no JSON object"),
    ],
)
def test_read_object_refuses_malformed_replies(reply: str, reason: str) -> None:
    with pytest.raises(BadOutput, match=reason):
        read_object(reply)


def test_read_array() -> None:
    assert read_array("[2, 1,]") == [2, 1]
    assert read_array('Ranking:\n```json\n[0, "1"]\n```') == [0, "1"]
    assert read_array('{"ranking": [1]} or [3]') == [3]  # the first array at top level
    with pytest.raises(BadOutput, match="not an array"):
        read_array('{"ranking": [1]}')
    with pytest.raises(BadOutput, match="no complete JSON array"):
        read_array("[1, 2")


def test_a_deeply_nested_reply_is_refused_not_a_crash() -> None:
    with pytest.raises(BadOutput, match="nested too deeply"):
        read_object('{"a": ' + "[" * 5000 + "]" * 5000 + "}")


def test_the_callers_read_control_characters() -> None:
    """The reply that failed on AVX-512 now parses where the project reads LLM JSON."""
    with pytest.raises(json.JSONDecodeError, match="Invalid control character"):
        json.loads(CONTROL)
    [decision] = parse_decisions(CONTROL, 1, {}, [set()]).values()
    assert decision.action == "add" and decision.reason == "The user moved.\nNew city:\tShanghai."
    assert parse_ranking('{"ranking": [1, 0],\n}', 3) == [1, 0, 2]


@settings(max_examples=300, deadline=None)
@given(
    value=st.dictionaries(
        st.text(max_size=8),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=12),
            lambda inner: (
                st.lists(inner, max_size=4)
                | st.dictionaries(st.text(max_size=6), inner, max_size=4)
            ),
            max_leaves=12,
        ),
        max_size=5,
    ),
    before=st.text(alphabet=st.characters(exclude_characters="{["), max_size=20),
    after=st.text(max_size=20),
    indent=st.sampled_from([None, 2]),
)
def test_any_object_reads_back_through_prose_and_raw_strings(
    value: dict[str, Any], before: str, after: str, indent: int | None
) -> None:
    """Valid JSON (strict or with raw control characters) reads back exactly."""
    strict = json.dumps(value, ensure_ascii=False, indent=indent)
    assert read_object(before + strict + after) == value
    raw = strict.replace("\\n", "\n").replace("\\t", "\t")  # raw control characters
    if "\\\\" not in strict:  # an escaped backslash before n would change meaning
        assert read_object(before + raw + after) == value


def test_lone_surrogates_a_model_writes_are_scrubbed_before_anything_stores_them() -> None:
    """A stored memory must render: "\\ud800" in a reply becomes U+FFFD (issue 14)."""
    from memos.llm.jsonreply import read_object

    reply = '{"memories": [{"value": "bad \\ud800 here", "\\udfff": "\\ud83d\\ude00"}]}'
    value = read_object(reply)
    item = value["memories"][0]
    assert item["value"] == "bad \ufffd here"
    assert item == {"value": "bad \ufffd here", "\ufffd": "\U0001f600"}  # pairs are joined
    json.dumps(value, ensure_ascii=False).encode("utf-8")  # renders

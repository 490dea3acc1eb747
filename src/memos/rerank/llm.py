"""Reranking by asking a chat model for an order of the candidates.

The model sees numbered, truncated documents and returns ``{"ranking": [...]}``
under a JSON schema. Its answer is only advice: indices that are out of range
or repeated are dropped, documents it forgot are appended in input order, and
any failure (LLM down, unparseable reply) keeps the input order. A reranker
that can lose or duplicate a memory, or fail a search, would be worse than none.
"""

from __future__ import annotations

import logging
from typing import Any

from memos.errors import ProviderError
from memos.llm.base import LLM, ChatMessage, JsonSchema
from memos.llm.jsonreply import BadOutput, read_array, read_object
from memos.rerank.base import RerankResult

logger = logging.getLogger(__name__)

SYSTEM_PROMPT = (
    "You rank documents by how well they answer or relate to a query. "
    'Reply with JSON only, in the form {"ranking": [<document numbers>]}, '
    "most relevant first, listing every document number exactly once."
)


def ranking_schema(n_docs: int) -> JsonSchema:
    """Integers limited to valid positions, so constrained decoders cannot invent any."""
    return {
        "type": "object",
        "properties": {
            "ranking": {
                "type": "array",
                "items": {"type": "integer", "enum": list(range(n_docs))},
                "maxItems": n_docs,
            }
        },
        "required": ["ranking"],
        "additionalProperties": False,
    }


def build_messages(query: str, documents: list[str], max_doc_chars: int) -> list[ChatMessage]:
    lines = [f"Query: {query}", "", "Documents:"]
    for i, doc in enumerate(documents):
        text = " ".join(doc.split())
        if len(text) > max_doc_chars:
            text = text[:max_doc_chars] + "..."
        lines.append(f"[{i}] {text}")
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": "\n".join(lines)},
    ]


def parse_ranking(reply: str, n_docs: int) -> list[int] | None:
    """A permutation of ``range(n_docs)`` from the reply, or None when nothing usable.

    Accepts the schema's object or a bare list, read by :mod:`memos.llm.jsonreply`
    (code fences, prose around the JSON); ints given as strings count. Invalid
    and repeated entries are skipped, missing documents follow in input order.
    """
    raw = _ranking_list(reply)
    if raw is None:
        return None
    order: list[int] = []
    for item in raw:
        index = _as_index(item)
        if index is not None and 0 <= index < n_docs and index not in order:
            order.append(index)
    if not order:
        return None
    order.extend(i for i in range(n_docs) if i not in order)
    return order


def _ranking_list(reply: str) -> list[Any] | None:
    # The schema's object first; a list under another key than "ranking" may be scores.
    try:
        value = read_object(reply).get("ranking")
    except BadOutput:
        try:
            value = read_array(reply)
        except BadOutput:
            return None
    return value if isinstance(value, list) else None


def _as_index(item: Any) -> int | None:
    if isinstance(item, bool):
        return None
    if isinstance(item, int):
        return item
    if isinstance(item, str) and item.strip().lstrip("[").rstrip("]").isdecimal():
        return int(item.strip().lstrip("[").rstrip("]"))
    return None


class LLMReranker:
    def __init__(self, llm: LLM, max_doc_chars: int = 400, max_tokens: int | None = None) -> None:
        self._llm = llm
        self._max_doc_chars = max_doc_chars
        self._max_tokens = max_tokens

    @property
    def name(self) -> str:
        return f"llm:{self._llm.name}"

    def close(self) -> None:
        """The LLM belongs to the service, which closes it."""

    def rerank(
        self, query: str, documents: list[str], top_n: int | None = None
    ) -> list[RerankResult]:
        n = len(documents)
        if n == 0:
            return []
        order = self._order(query, documents) if n > 1 else [0]
        # Scores only encode the order: the model gives no calibrated relevance.
        results = [
            RerankResult(index, round((n - rank) / n, 6)) for rank, index in enumerate(order)
        ]
        return results if top_n is None else results[:top_n]

    def _order(self, query: str, documents: list[str]) -> list[int]:
        n = len(documents)
        try:
            reply = self._llm.chat(
                build_messages(query, documents, self._max_doc_chars),
                json_schema=ranking_schema(n),
                max_tokens=self._max_tokens or 16 + 6 * n,
            )
        except ProviderError as exc:  # LLMError, or any adapter's provider failure
            logger.warning("LLM reranker kept the input order: %s", exc)
            return list(range(n))
        order = parse_ranking(reply, n)
        if order is None:
            logger.warning("LLM reranker kept the input order: unusable reply %r", reply[:200])
            return list(range(n))
        return order

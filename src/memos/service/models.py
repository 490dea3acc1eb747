"""The stateless model endpoints: ``/extract/memory`` and ``/rerank``; nothing is stored."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from memos.domain.models import MessageInput, Scope
from memos.errors import EmptyField, InputTooLong, InvalidParameter, LLMNotConfigured, MissingField
from memos.reader.fine import Extraction, FineReader, Kind
from memos.rerank import Reranker, RerankResult
from memos.service import validation as v
from memos.service.messages import to_message
from memos.settings import LimitSettings
from memos.text.tokens import count_tokens


@dataclass
class RerankOutcome:
    model: str
    results: list[RerankResult]
    prompt_tokens: int


class ModelEndpoints:
    def __init__(
        self, limits: LimitSettings, fine_reader: FineReader | None, reranker: Reranker
    ) -> None:
        """``reranker``: the configured one, or the embedder's cosine when none is."""
        self.limits = limits
        self.fine_reader = fine_reader
        self.reranker = reranker

    def extract(
        self,
        *,
        messages: list[MessageInput] | None,
        extraction_types: list[str] | None = None,
        user_id: str | None = None,
    ) -> Extraction:
        """Fine memories of ``messages``, written nowhere (``/extract/memory``)."""
        texts = v.check_extract_messages(messages, self.limits)
        kinds: list[Kind] = [
            "memory" if t == "memory" else "preference"
            for t in v.check_extraction_types(extraction_types)
        ]
        assert messages is not None
        if self.fine_reader is None:
            raise LLMNotConfigured("/extract/memory")
        user = v.optional_id(user_id, "user_id", self.limits) or "extract"
        scope = Scope.for_user(user)
        window = [
            to_message(scope, None, msg, text) for msg, text in zip(messages, texts, strict=True)
        ]
        return self.fine_reader.read(scope, window, kinds=kinds)

    def rerank(
        self, *, query: str | None, documents: Sequence[str] | None, top_n: int | None = None
    ) -> RerankOutcome:
        """Order ``documents`` by relevance to ``query``.

        ``top_n`` above the number of documents returns them all, as Cohere-style
        APIs do.
        """
        q = v.check_query(query, self.limits)
        if documents is None:
            raise MissingField("documents is required")
        if not isinstance(documents, list | tuple) or not all(
            isinstance(d, str) for d in documents
        ):
            raise InvalidParameter("documents must be an array of strings")
        documents = list(documents)
        if not documents:
            raise EmptyField("documents cannot be empty")
        cap = self.limits.max_rerank_documents
        if len(documents) > cap:
            raise InvalidParameter(f"documents has {len(documents)} entries; the maximum is {cap}")
        for i, doc in enumerate(documents):
            v.check_text(doc, f"documents[{i}]", self.limits)
        doc_tokens = sum(count_tokens(d) for d in documents)
        if doc_tokens > self.limits.max_rerank_tokens:
            raise InputTooLong(
                f"documents total about {doc_tokens} tokens; the maximum is "
                f"{self.limits.max_rerank_tokens}"
            )
        if top_n is not None and (
            isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1
        ):
            raise InvalidParameter("top_n must be a positive integer")
        n = len(documents) if top_n is None else min(top_n, len(documents))
        results = self.reranker.rerank(q, documents, n)[:n]
        return RerankOutcome(self.reranker.name, results, count_tokens(q) + doc_tokens)

"""MemoryService: add, search, list, get, delete and messages; the faces' one entry point.

Every face calls these methods; they validate input, resolve the caller's
scope (``access``: a user may only touch cubes they own) and drive the reader,
embedder, store and searcher. Task status (``tasks``) and the stateless model
endpoints (``models``: extract, rerank) live in their own modules; the
methods here only hand those calls on. Nothing here knows about HTTP or wire
formats.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from memos.domain.filters import parse_filter
from memos.domain.models import (
    MemoryItem,
    MemoryStatus,
    Message,
    MessageInput,
    Page,
    Scope,
    ScoredMemory,
    new_id,
)
from memos.embedders import build_embedder
from memos.embedders.base import Embedder, Vectors
from memos.errors import (
    ConfigError,
    EmptyField,
    InvalidParameter,
    LLMNotConfigured,
    MemoryNotFound,
    MemosError,
    MissingField,
    NotFound,
    UserNotFound,
)
from memos.llm import LLM, build_llm
from memos.organize import Organizer
from memos.queue import QUEUE_FILE, TaskQueue
from memos.queue.factory import open_queue
from memos.reader.fast import FastReader
from memos.reader.fine import Extraction, FineReader
from memos.rerank import Reranker, build_reranker
from memos.rerank.cosine import CosineReranker
from memos.search.hybrid import HybridSearcher
from memos.service import validation as v
from memos.service.access import Access
from memos.service.background import BackgroundRunner
from memos.service.messages import to_message
from memos.service.models import ModelEndpoints, RerankOutcome
from memos.service.refine import Refiner
from memos.service.scheduler import Scheduler, TaskView
from memos.service.tasks import TaskInfo, Tasks
from memos.settings import Settings
from memos.store.base import Ingest, MemoryStore
from memos.store.factory import open_store, store_kind
from memos.working import Observed, WorkingConfig, WorkingKey, WorkingMemory

logger = logging.getLogger(__name__)

# Query embeddings kept for repeated queries (a few KB each).
QUERY_CACHE_SIZE = 256


@dataclass
class AddResult:
    task_id: str
    status: str
    memory_ids: list[str] = field(default_factory=list)
    message_ids: list[str] = field(default_factory=list)
    # Set when fine extraction failed: the fast memories stay, the task is "failed".
    error: str | None = None


class MemoryService:
    def __init__(
        self,
        settings: Settings,
        store: MemoryStore,
        embedder: Embedder,
        *,
        reranker: Reranker | None = None,
        llm: LLM | None = None,
        queue: TaskQueue | None = None,
        run_workers: bool | None = None,
    ) -> None:
        """``run_workers``: drain the task queue on threads of this process
        (default: when ``settings.queue.workers`` > 0 and an LLM is configured)."""
        self.settings = settings
        self.store = store
        self.embedder = embedder
        self.limits = settings.limits
        self.reader = FastReader(settings.reader.chat_window_max_tokens)
        self.searcher = HybridSearcher(store, embedder, settings.search)
        self.llm = llm
        self.fine_reader = (
            FineReader(llm, window_tokens=settings.reader.chat_window_max_tokens)
            if llm is not None
            else None
        )
        self.refiner = (
            Refiner(store, embedder, self.fine_reader, Organizer(llm), settings.organize)
            if self.fine_reader is not None and llm is not None
            else None
        )
        self.background = BackgroundRunner()
        self._qcache: OrderedDict[str, Vectors] = OrderedDict()
        self._qcache_lock = threading.Lock()
        qs = settings.queue
        if queue is None:
            queue = open_queue(settings)
        self.scheduler = Scheduler(
            queue,
            store,
            lambda: self.refiner,
            workers=qs.workers,
        )
        if run_workers is None:
            run_workers = qs.workers > 0 and self.refiner is not None
        if run_workers:
            self.scheduler.start_workers()
        # None: search keeps the searcher's order. /rerank then falls back to the
        # embedder's cosine so it answers with zero configuration.
        self.reranker = reranker
        self.access = Access(store, settings.limits)
        self.tasks = Tasks(store, self.scheduler, self.background, settings.limits)
        self.models = ModelEndpoints(
            settings.limits, self.fine_reader, reranker or CosineReranker(embedder)
        )
        ws = settings.working
        self.working = (
            WorkingMemory(
                WorkingConfig(
                    size=ws.size,
                    max_keys=ws.max_keys,
                    decay=ws.decay,
                    half_life=ws.half_life,
                    search_admit=ws.search_admit,
                )
            )
            if ws.enabled
            else None
        )
        self._usage_flushed = time.monotonic()

    @classmethod
    def open(
        cls,
        settings: Settings,
        embedder: Embedder | None = None,
        *,
        reranker: Reranker | None = None,
        llm: LLM | None = None,
        run_workers: bool | None = None,
    ) -> MemoryService:
        """Build the service settings describe: the store ``store.url`` names (SQLite
        under ``data_dir`` by default, or PostgreSQL) and the configured embedder,
        LLM and reranker (the arguments replace what settings name)."""
        embedder = embedder or build_embedder(settings.embedder)
        store = open_store(settings, embedder.name)
        if store_kind(settings.store.url) == "postgres" and not settings.queue.url:
            logger.warning(
                "the store is shared (PostgreSQL) but tasks queue in %s: servers and "
                "workers elsewhere will not see them; set MEMOS_QUEUE_URL=redis://... "
                "to share the queue too",
                settings.data_dir / QUEUE_FILE,
            )
        try:
            llm = llm or build_llm(settings.llm)
            reranker = reranker or build_reranker(settings.reranker, llm)
        except ConfigError:
            store.close()
            raise
        return cls(settings, store, embedder, reranker=reranker, llm=llm, run_workers=run_workers)

    @staticmethod
    def preflight(settings: Settings) -> None:
        """Open and close what all processes share (the store, with its migrations
        and embedder check, and the task queue), so a bad setting fails once,
        before ``memos serve --workers N`` starts its processes."""
        embedder = build_embedder(settings.embedder)
        open_store(settings, embedder.name).close()
        open_queue(settings).close()

    def close(self) -> None:
        self.scheduler.close()
        self.background.close()
        self.flush_usage()
        if self.reranker is not None:
            self.reranker.close()
        if self.llm is not None:
            self.llm.close()
        self.store.close()

    # ----------------------------------------------------------------- scopes
    def _scope(
        self,
        user_id: str | None,
        cube_id: str | None = None,
        *,
        agent_id: str | None = None,
        app_id: str | None = None,
    ) -> Scope:
        return self.access.scope(user_id, cube_id, agent_id=agent_id, app_id=app_id)

    def readable_scopes(
        self, user_id: str | None, cube_ids: Sequence[str | None] | None
    ) -> list[Scope]:
        return self.access.readable(user_id, cube_ids)

    # ------------------------------------------------------------------- add
    def add(
        self,
        *,
        user_id: str | None,
        messages: list[MessageInput] | None,
        conversation_id: str | None = None,
        cube_id: str | None = None,
        agent_id: str | None = None,
        app_id: str | None = None,
        tags: Sequence[str] | None = None,
        info: dict[str, Any] | None = None,
        require_conversation: bool = False,
        mode: str | None = None,
        async_mode: bool = False,
    ) -> AddResult:
        """Store messages in one cube; see :meth:`add_to_cubes`."""
        return self.add_to_cubes(
            user_id=user_id,
            messages=messages,
            cube_ids=[cube_id],
            conversation_id=conversation_id,
            agent_id=agent_id,
            app_id=app_id,
            tags=tags,
            info=info,
            require_conversation=require_conversation,
            mode=mode,
            async_mode=async_mode,
        )[0]

    def add_to_cubes(
        self,
        *,
        user_id: str | None,
        messages: list[MessageInput] | None,
        cube_ids: Sequence[str | None] = (None,),
        conversation_id: str | None = None,
        agent_id: str | None = None,
        app_id: str | None = None,
        tags: Sequence[str] | None = None,
        info: dict[str, Any] | None = None,
        require_conversation: bool = False,
        mode: str | None = None,
        async_mode: bool = False,
    ) -> list[AddResult]:
        """Store messages in each cube and make their memories searchable before returning.

        Everything is validated and every cube resolved before anything is
        written, and all cubes are written in one transaction: an error means
        nothing changed. ``mode="fine"`` then asks the LLM for fine memories,
        compares them with the stored ones (merge, supersede, duplicate) and lets
        them replace the window's fast memories (archived, not deleted). With
        ``async_mode`` that pass runs in the background and the task reads
        ``running`` until it ends. If extraction fails the fast memories stay and
        the task is recorded as failed with the reason.
        """
        started = time.perf_counter()
        if mode not in (None, "fast", "fine"):
            raise InvalidParameter("mode must be fast or fine")
        if require_conversation:
            conversation_id = v.require_id(conversation_id, "conversation_id", self.limits)
        else:
            conversation_id = v.optional_id(conversation_id, "conversation_id", self.limits)
        texts = v.check_messages(messages, self.limits)
        assert messages is not None
        tag_list = v.check_tags(tags, self.limits)
        if info is not None and not isinstance(info, dict):
            raise InvalidParameter("info must be an object")
        v.check_free_json(info, "info", self.limits)
        if mode == "fine" and self.refiner is None:  # refused before anything is written
            v.require_id(user_id, "user_id", self.limits)
            raise LLMNotConfigured("mode fine")
        scopes = list(
            {
                s.cube_id: s
                for s in (
                    self._scope(user_id, c, agent_id=agent_id, app_id=app_id)
                    for c in (cube_ids or [None])
                )
            }.values()
        )
        fine = mode == "fine" and self.refiner is not None
        batch: list[Ingest] = []
        embedded: dict[tuple[str, ...], Vectors] = {}
        for scope in scopes:
            stored = [
                to_message(scope, conversation_id, msg, text)
                for msg, text in zip(messages, texts, strict=True)
            ]
            # A retried request (same client message_id in the same conversation) is a
            # no-op for the messages already stored, so clients can retry after a lost
            # response.
            client_ids = [m.message_id for m in stored if m.message_id]
            seen = self.store.existing_message_ids(scope, conversation_id, client_ids)
            if seen:
                stored = [m for m in stored if m.message_id not in seen]
            items = self.reader.read(scope, stored, tags=tag_list, info=info)
            values = tuple(m.value for m in items)
            if values not in embedded:  # the same text in several cubes is embedded once
                embedded[values] = (
                    self.embedder.embed(list(values)) if items else np.zeros((0, 1), np.float32)
                )
            task = (new_id(), "running" if fine else "completed", None)
            batch.append(Ingest(scope, stored, items, embedded[values], task=task))
        self.store.ingest_batch(batch)
        results = [
            self._after_ingest(part, conversation_id, fine, async_mode, tag_list, info)
            for part in batch
        ]
        logger.info(
            "added %d messages -> %d memories for %d cube(s) in %.1f ms",
            sum(len(p.messages) for p in batch),
            sum(len(p.memories) for p in batch),
            len(batch),
            (time.perf_counter() - started) * 1000,
        )
        return results

    def _after_ingest(
        self,
        part: Ingest,
        conversation_id: str | None,
        fine: bool,
        async_mode: bool,
        tags: list[str],
        info: dict[str, Any] | None,
    ) -> AddResult:
        """Working memory, then the fine pass (now, queued, or none) for one cube."""
        scope, stored, items = part.scope, list(part.messages), list(part.memories)
        assert part.task is not None
        task_id = part.task[0]
        if self.working is not None and items:
            self._observe_turns(scope, conversation_id, [m.id for m in items], part.vectors)
        message_ids = [m.message_id or m.id for m in stored]
        fast_ids = [m.id for m in items]
        if not fine or self.refiner is None:
            return AddResult(task_id, "completed", fast_ids, message_ids)
        if not async_mode:
            outcome = self.refiner.refine(scope, task_id, stored, items, tags=tags, info=info)
            if outcome.status != "completed":  # success is recorded with the writes
                self.store.put_task(scope, task_id, outcome.status, outcome.error)
            return AddResult(
                task_id, outcome.status, outcome.memory_ids, message_ids, outcome.error
            )
        self.scheduler.submit_fine_pass(
            scope, task_id, conversation_id, [m.id for m in stored], fast_ids, tags=tags, info=info
        )
        return AddResult(task_id, "running", fast_ids, message_ids)

    def wait_background(self, timeout: float | None = None, user_id: str | None = None) -> bool:
        """Block until queued fine passes (of ``user_id``, or everyone's) are done."""
        return self.tasks.wait(timeout, user_id)

    # ------------------------------------------------- model endpoints (stateless)
    def extract(
        self,
        *,
        messages: list[MessageInput] | None,
        extraction_types: list[str] | None = None,
        user_id: str | None = None,
    ) -> Extraction:
        """Fine memories of ``messages``, written nowhere (``/extract/memory``)."""
        return self.models.extract(
            messages=messages, extraction_types=extraction_types, user_id=user_id
        )

    def rerank(
        self, *, query: str | None, documents: Sequence[str] | None, top_n: int | None = None
    ) -> RerankOutcome:
        """Order ``documents`` by relevance to ``query`` (the reranker, else cosine)."""
        return self.models.rerank(query=query, documents=documents, top_n=top_n)

    # ---------------------------------------------------------------- search
    def search(
        self,
        *,
        user_id: str | None,
        query: str | None,
        cube_ids: Sequence[str] | None = None,
        filter: Any = None,
        limit: int | None = None,
        relativity: float | None = None,
        conversation_id: str | None = None,
        max_limit: int | None = None,
    ) -> list[ScoredMemory]:
        q = v.check_query(query, self.limits)
        cap = max_limit or self.limits.max_memory_limit
        n = v.check_limit(limit, "memory_limit_number", 9, cap)
        threshold = v.check_relativity(relativity, self.settings.search.default_relativity)
        conv = v.optional_id(conversation_id, "conversation_id", self.limits)
        flt = parse_filter(filter)
        scopes = self.readable_scopes(user_id, cube_ids)
        personal = flt.personal if flt else None
        # A reranker may promote a hit from below the cut, so fetch its whole window.
        fetch = max(n, self.settings.reranker.top_n) if self.reranker is not None else n
        # keyword search needs no query vector: on a database store it runs meanwhile
        text_hits = (
            self.searcher.prefetch_text(scopes[0], q, fetch, personal) if len(scopes) == 1 else None
        )
        qvec = self._query_vector(q)
        hits: list[ScoredMemory] = []
        for scope in scopes:
            working = (
                dict(self.working.lookup((scope.cube_id, conv), qvec, fetch))
                if self.working is not None
                else None
            )
            hits.extend(
                self.searcher.search(
                    scope,
                    q,
                    qvec=qvec,
                    limit=fetch,
                    relativity=threshold,
                    flt=personal,
                    conversation_id=conv,
                    working=working,
                    text_hits=text_hits,
                )
            )
        if len(scopes) > 1:
            hits.sort(key=lambda h: -h.score)
        if self.reranker is not None:
            hits = self._rerank_hits(self.reranker, q, hits)
        if self.working is not None:
            for scope in scopes:
                mine = [h for h in hits[:n] if h.memory.cube_id == scope.cube_id]
                self._observe_search(scope, (scope.cube_id, conv), qvec, mine)
            self._maybe_flush_usage()
        return hits[:n]

    # ------------------------------------------------------- working memory
    def _observe_turns(
        self, scope: Scope, conversation_id: str | None, ids: list[str], vectors: np.ndarray
    ) -> None:
        """New memories enter the cube-wide set and their conversation's; with
        ``preload_k`` the store's nearest older memories follow (next scene)."""
        assert self.working is not None
        neighbours: list[Observed] = []
        k = self.settings.working.preload_k
        if k:
            own = set(ids)
            best: dict[str, float] = {}
            for hit in self.store.vector_search(scope, vectors[-1], k + len(ids), None):
                if hit.memory_id not in own:
                    best.setdefault(hit.memory_id, hit.score)
            top = list(best.items())[:k]
            if top:
                vecs = self.store.vectors(scope, [m for m, _ in top])
                neighbours = [Observed(m, v, s) for (m, s), v in zip(top, vecs, strict=True)]
        for key in dict.fromkeys([(scope.cube_id, None), (scope.cube_id, conversation_id)]):
            self.working.observe_turns(key, ids, vectors)
            if neighbours:
                self.working.preload(key, neighbours)

    def _observe_search(
        self, scope: Scope, key: WorkingKey, qvec: np.ndarray, hits: list[ScoredMemory]
    ) -> None:
        """Returned hits heat up and count a use; the first ``search_admit`` may enter."""
        assert self.working is not None
        top = hits[: self.working.config.search_admit]
        vecs = list(self.store.vectors(scope, [h.memory.id for h in top])) if top else []
        observed = [
            Observed(h.memory.id, v, float(v @ qvec)) for h, v in zip(top, vecs, strict=True)
        ]
        observed += [Observed(h.memory.id, None, h.relativity) for h in hits[len(top) :]]
        self.working.observe_search(key, qvec, observed)

    def _maybe_flush_usage(self) -> None:
        if time.monotonic() - self._usage_flushed >= self.settings.working.usage_flush_s:
            self._usage_flushed = time.monotonic()
            self.background.submit(self.flush_usage, "usage-flush")

    def flush_usage(self) -> None:
        """Persist pending usage counts and last-used times, one batch per cube;
        a failed write puts them back for the next flush."""
        if self.working is None:
            return
        deltas = self.working.drain_usage()
        by_cube: dict[str, list[tuple[str, int, float]]] = {}
        for d in deltas:
            by_cube.setdefault(d.cube_id, []).append((d.memory_id, d.uses, d.last_used))
        try:
            for cube, usage in by_cube.items():
                owner = self.store.cube_owner(cube) or cube
                self.store.record_usage(Scope(user_id=owner, cube_id=cube), usage)
                by_cube[cube] = []
        except MemosError as exc:
            logger.warning("could not persist memory usage; retrying later: %s", exc.message)
            left = {(c, m) for c, rows in by_cube.items() for m, _, _ in rows}
            self.working.restore_usage([d for d in deltas if (d.cube_id, d.memory_id) in left])

    def _query_vector(self, query: str) -> Vectors:
        """The query's embedding, remembered for the last few queries.

        ``/product/search`` searches its fact, preference and tool buckets with
        the same query; without this it would embed it up to three times.
        """
        with self._qcache_lock:
            found = self._qcache.get(query)
            if found is not None:
                self._qcache.move_to_end(query)
                return found
        vec = self.embedder.embed_query(query)
        with self._qcache_lock:
            self._qcache[query] = vec
            while len(self._qcache) > QUERY_CACHE_SIZE:
                self._qcache.popitem(last=False)
        return vec

    def _rerank_hits(
        self, reranker: Reranker, query: str, hits: list[ScoredMemory]
    ) -> list[ScoredMemory]:
        """Reorder the first ``reranker.top_n`` hits; the rest keep their place after them.

        ``relativity`` stays the searcher's calibrated value (the threshold keeps one
        meaning); only the order changes. A failing reranker costs the reorder, not
        the search.
        """
        head = hits[: self.settings.reranker.top_n]
        if len(head) < 2:
            return hits
        started = time.perf_counter()
        try:
            ranked = reranker.rerank(query, [h.memory.value for h in head], None)
        except MemosError as exc:
            logger.warning("reranker %s failed; keeping search order: %s", reranker.name, exc)
            return hits
        order = [r.index for r in ranked]
        if sorted(order) != list(range(len(head))):
            logger.warning(
                "reranker %s returned no permutation; keeping search order", reranker.name
            )
            return hits
        logger.debug(
            "reranked %d hits with %s in %.1f ms",
            len(head),
            reranker.name,
            (time.perf_counter() - started) * 1000,
        )
        return [head[i] for i in order] + hits[len(head) :]

    # ------------------------------------------------------------------ reads
    def list_memories(
        self,
        *,
        user_id: str | None,
        cube_id: str | None = None,
        page: int | None = None,
        size: int | None = None,
        filter: Any = None,
    ) -> Page:
        scope = self._scope(user_id, cube_id)
        number = v.check_limit(page, "page", 1, 10**9)
        per = v.check_limit(size, "size", 10, self.limits.max_page_size)
        flt = parse_filter(filter)
        return self.store.list_memories(
            scope, flt.personal if flt else None, offset=(number - 1) * per, limit=per
        )

    def get(
        self, *, user_id: str | None, memory_id: str, cube_ids: Sequence[str] | None = None
    ) -> MemoryItem:
        if not isinstance(memory_id, str) or not 0 < len(memory_id) <= self.limits.max_id_chars:
            raise InvalidParameter(
                f"memory_id must be 1 to {self.limits.max_id_chars} characters"
            )
        v.check_text(memory_id, "memory_id")
        for scope in self.readable_scopes(user_id, cube_ids):
            found = self.store.get_memories(scope, [memory_id])
            if found:
                return found[0]
        raise NotFound(f"memory {memory_id!r} not found")

    def messages(
        self,
        *,
        user_id: str | None,
        conversation_id: str | None,
        limit: int | None = None,
        require_conversation: bool = True,
    ) -> list[Message]:
        scope = self._scope(user_id)
        if require_conversation:
            conv: str | None = v.require_id(conversation_id, "conversation_id", self.limits)
        else:
            conv = v.optional_id(conversation_id, "conversation_id", self.limits)
        n = v.check_limit(limit, "message_limit_number", 6, self.limits.max_message_limit)
        return self.store.list_messages(scope, conv, limit=n)

    def history(self, *, user_id: str | None, memory_id: str) -> list[dict[str, Any]]:
        scope = self._scope(user_id)
        return [ver.model_dump(mode="json") for ver in self.store.history(scope, memory_id)]

    # ---------------------------------------------------------------- delete
    def delete_memories(
        self,
        *,
        user_id: str | None,
        memory_ids: Sequence[str] | None,
        cube_ids: Sequence[str] | None = None,
    ) -> int:
        """Delete memories by id within the user's cubes; all or nothing.

        An id outside the caller's scope reads as missing (40307), so the
        answer never reveals another tenant's memories.
        """
        if memory_ids is None:
            raise MissingField("memory_ids is required")
        if not memory_ids:
            raise EmptyField("memory_ids cannot be empty")
        memory_ids = v.check_id_list(memory_ids, "memory_ids", self.limits)
        scopes = self.readable_scopes(user_id, cube_ids)
        wanted = list(dict.fromkeys(memory_ids))
        owner: dict[str, Scope] = {}
        for scope in scopes:
            for item in self.store.get_memories(scope, wanted):
                owner[item.id] = scope
        missing = [i for i in wanted if i not in owner]
        if missing:
            raise MemoryNotFound(f"memories not found: {missing[:5]}", data={"missing": missing})
        batch = [(scope, [i for i, s in owner.items() if s == scope]) for scope in scopes]
        deleted = self.store.set_status_batch(batch, MemoryStatus.DELETED)
        if self.working is not None:
            for scope, ids in batch:
                self.working.discard(scope.cube_id, ids)
        return deleted

    def delete_all(
        self,
        *,
        user_id: str | None,
        cube_id: str | None = None,
        cube_ids: Sequence[str | None] | None = None,
    ) -> int:
        """Delete every live memory of the user's cube(s) (messages are kept).

        Every cube must exist before any is touched, and all go in one
        transaction: a refused call deletes nothing.
        """
        scopes = self.readable_scopes(user_id, cube_ids or ([cube_id] if cube_id else None))
        for scope in scopes:
            if self.store.cube_owner(scope.cube_id) is None:
                if scope.cube_id == scope.user_id:
                    raise UserNotFound(f"user {scope.user_id!r} has no memories")
                raise UserNotFound(f"cube {scope.cube_name!r} has no memories")
        if self.working is not None:
            for scope in scopes:
                self.working.clear(scope.cube_id)
        return self.store.delete_scopes(scopes)

    # ------------------------------------------------------------------ tasks
    def task_status(self, task_id: str | None, user_id: str | None = None) -> str:
        return self.tasks.info(task_id, user_id).status

    def task(self, task_id: str | None, user_id: str | None = None) -> TaskInfo:
        """A task's status and, when it failed, why."""
        return self.tasks.info(task_id, user_id)

    def task_view(self, task_id: str | None, user_id: str | None = None) -> TaskView:
        """The task with its queue details (attempts, label, queue status)."""
        return self.tasks.view(task_id, user_id)

"""In-process, best-effort background chores (flushing working-memory usage counts).

Work that must not be lost (the fine pass of an async add) goes through the
durable task queue instead (``memos.service.scheduler``); what runs here may be
dropped with the process, so only bookkeeping that can be recomputed or lost
belongs here. One worker thread keeps chores in order.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures

logger = logging.getLogger(__name__)


class BackgroundRunner:
    def __init__(self, workers: int = 1) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="memos-fine")
        self._pending: set[Future[None]] = set()
        self._lock = threading.Lock()

    def submit(self, job: Callable[[], None], label: str) -> None:
        def run() -> None:
            try:
                job()
            except BaseException:
                # The job records its own failures; this is the last resort for bugs,
                # so they reach the log instead of vanishing with the thread.
                logger.exception("background job %s crashed", label)
                raise

        future = self._pool.submit(run)
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until queued work is done; False when ``timeout`` ran out first."""
        with self._lock:
            pending = set(self._pending)
        if not pending:
            return True
        _, not_done = wait_futures(pending, timeout=timeout)
        return not not_done

    def close(self, timeout: float = 30.0) -> None:
        if not self.wait(timeout):
            logger.warning("closing with %d background jobs unfinished", self.pending)
        self._pool.shutdown(wait=False, cancel_futures=True)

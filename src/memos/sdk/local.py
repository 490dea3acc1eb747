"""``MemOS``: the embedded face; no server, same answers as the server's ``data``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from memos.embedders.base import Embedder
from memos.errors import MemosError
from memos.sdk.base import Endpoint, MemoryAPI
from memos.service import MemoryService
from memos.service.validation import check_payload
from memos.settings import Settings, load_settings
from memos.wire import cloud
from memos.wire.errors import validation_error

logger = logging.getLogger(__name__)

Handler = Callable[[MemoryService, Any], dict[str, Any]]

_ROUTES: dict[Endpoint, tuple[type[BaseModel], Handler]] = {
    "/add/message": (cloud.AddMessageRequest, cloud.add_message),
    "/search/memory": (cloud.SearchMemoryRequest, cloud.search_memory),
    "/get/memory": (cloud.GetMemoryRequest, cloud.get_memory),
    "/delete/memory": (cloud.DeleteMemoryRequest, cloud.delete_memory),
    "/get/message": (cloud.GetMessageRequest, cloud.get_message),
    "/get/status": (cloud.GetStatusRequest, cloud.get_status),
    "/rerank": (cloud.RerankRequest, cloud.rerank),
    "/extract/memory": (cloud.ExtractMemoryRequest, cloud.extract_memory),
}


class MemOS(MemoryAPI):
    """Memories in a local SQLite store, driven in this process.

    ``MemOS()`` uses the configured data dir (``~/.memos/data`` unless
    ``MEMOS_DATA_DIR`` says otherwise); ``MemOS(data_dir=...)`` picks another.
    Pass ``settings`` for full control and ``embedder`` to reuse a loaded model.
    """

    def __init__(
        self,
        data_dir: str | Path | None = None,
        settings: Settings | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        if settings is None:
            settings = load_settings({"data_dir": data_dir})
        elif data_dir is not None:
            settings = settings.model_copy(update={"data_dir": Path(data_dir)})
        self.settings = settings
        self.service = MemoryService.open(settings, embedder)
        self._closed = False
        logger.debug("opened embedded MemOS at %s", settings.data_dir)

    def _call(self, endpoint: Endpoint, body: dict[str, Any]) -> dict[str, Any]:
        if self._closed:
            raise MemosError("this MemOS instance is closed")
        model, handler = _ROUTES[endpoint]
        check_payload(body, self.settings.limits)  # the same bounds as the HTTP guard
        try:
            request = model.model_validate(body)
        except ValidationError as exc:
            raise validation_error(exc.errors()) from None
        return handler(self.service, request)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.service.close()

    def __repr__(self) -> str:
        return f"MemOS(data_dir={str(self.settings.data_dir)!r})"

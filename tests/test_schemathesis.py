"""Fuzz every operation of the OpenAPI spec: no generated input may cause a 5xx,
and every answer is one the document describes (status, content type, body
schema, headers).

One exception to "no 5xx": this server has no LLM, so LLM-only features
(``/extract/memory``, ``mode: fine``) answer their documented 501 / 50002
"configure an LLM" error.

Runs in-process over ASGI against an app with a seeded store (hash embedder),
with the example count capped so the whole file stays well under 3 minutes.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from memos.api import create_app
from memos.domain.models import MessageInput
from memos.service import MemoryService
from memos.settings import load_settings

pytestmark = pytest.mark.timeout(300)

_DATA_DIR = Path(tempfile.mkdtemp(prefix="memos-fuzz-"))
_SETTINGS = load_settings({"data_dir": _DATA_DIR, "embedder": {"kind": "hash"}}, environ={})
_SERVICE = MemoryService.open(_SETTINGS)
# data under ids a fuzzer likes to produce, so reads and deletes hit real rows
for _user in ("string", "user", "a", "0"):
    _SERVICE.add(
        user_id=_user,
        conversation_id="string",
        messages=[
            MessageInput(role="user", content="I like hiking in the Alps.", message_id="string"),
            MessageInput(role="assistant", content="The Alps are great for hiking."),
        ],
        tags=["string"],
        info={"string": "string"},
    )


def _cleanup() -> None:
    _SERVICE.close()
    shutil.rmtree(_DATA_DIR, ignore_errors=True)


atexit.register(_cleanup)

app = create_app(_SETTINGS, service=_SERVICE)
schema = schemathesis.openapi.from_asgi("/openapi.json", app)
CONFORMANCE = [
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@schema.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)
def test_no_server_errors(case: schemathesis.Case) -> None:
    response = case.call()
    if response.status_code == 501:
        body = response.json()
        error_code = body["data"]["error_code"] if body["code"] == 501 else body["code"]
        assert error_code == 50002 and "MEMOS_LLM_BASE_URL" in body["message"], body
        case.validate_response(response, checks=CONFORMANCE)
        return
    case.validate_response(response, checks=[not_a_server_error, *CONFORMANCE])


def test_spec_lists_both_dialects() -> None:
    paths = set(schema.raw_schema["paths"])
    assert {
        "/add/message",
        "/search/memory",
        "/get/memory",
        "/delete/memory",
        "/get/message",
        "/get/status",
        "/extract/memory",
        "/product/add",
        "/product/search",
        "/product/get_all",
        "/product/get_memory",
        "/product/get_memory/{memory_id}",
        "/product/delete_memory",
        "/health",
    } <= paths

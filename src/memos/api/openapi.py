"""The OpenAPI document as the server really answers.

Each route lists its answers with :func:`cloud_doc`, :func:`product_doc` or
:func:`stream_doc`: the success envelope around its typed ``data``
(:mod:`memos.api.schemas`) and every error status it can send, in its
dialect's error envelope (rendered by :mod:`memos.api.errors`). Cloud paths
answer ``{code: <MemOS code>, message, data}``; ``/product`` paths and
``/health`` answer ``{code: <HTTP status>, message, data: {error_code, detail}}``.

:func:`install` then drops what FastAPI adds on its own but the server never
sends: the 422 validation answer (a request that fails to parse is a 400 in
the envelope) and its schemas. Documentation only: no response is validated
or serialized through these models.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Literal

from fastapi import FastAPI
from pydantic import BaseModel, Field, create_model

from memos.api.schemas import Out

Responses = dict[int | str, dict[str, Any]]
Dialect = Literal["cloud", "product"]

# Every route can fail unexpectedly (500); the rest each route names.
# What api/limits.py answers for any request with a body (POST), before routing.
GUARDED = (400, 408, 413)
ERRORS: dict[int, str] = {
    400: (
        "The request is malformed: 40000 (wrong type, structure or value; a body that is "
        "not JSON or holds JSON no field may hold: duplicate keys, NaN, too deep), "
        "40002 (a required field is missing), 40003 (an empty list), "
        "40006 (an unknown type), 40010 / 40011 (user_id / conversation_id too long), "
        "40012 (relativity outside 0..1), 40305 (input over its token budget)."
    ),
    403: "40306: the cube belongs to another user (data from before cubes were namespaced).",
    404: (
        "Not found in the caller's scope: 40001 (memory), 40307 (memories to delete; "
        "the missing ids in the details), 40308 (a user without memories), 50131 (task)."
    ),
    408: "40000: the request body did not arrive in time.",
    413: "40000: the request body is larger than the server accepts.",
    500: "50000: an unexpected error; the details are in the server log, not the answer.",
    501: "50002: the feature needs an LLM and none is configured (MEMOS_LLM_*).",
    502: "50143: the LLM's replies could not be read as an extraction.",
    503: "50004: a backing service (storage, embedder, LLM, reranker) is unavailable; retry.",
}


class CloudError(Out):
    """A cloud-dialect error; the HTTP status is the one it is documented under."""

    code: int = Field(description="the MemOS error code (see the status's description)")
    message: str
    data: Any = Field(description="details where there are any (40307: missing ids), else null")


class ProductErrorData(Out):
    error_code: int = Field(description="the MemOS error code (see the status's description)")
    detail: Any = Field(description="details where there are any (40307: missing ids), else null")


class ProductError(Out):
    """A ``/product``-dialect error."""

    code: int = Field(description="the HTTP status")
    message: str
    data: ProductErrorData


class CloudOk(Out):
    code: Literal[0]
    message: Literal["ok"]


class ProductOk(Out):
    code: Literal[200]
    message: str


@cache
def envelope(dialect: Dialect, data: type[BaseModel]) -> type[BaseModel]:
    """The success envelope around ``data`` (one model per dialect and payload)."""
    stem = data.__name__.removesuffix("Data").removeprefix("Product")
    base: type[Out] = CloudOk if dialect == "cloud" else ProductOk
    return create_model(
        f"{dialect.title()}{stem}Response",
        __base__=base,
        __doc__=f"Success in the {dialect} envelope; the payload in `data`.",
        data=(data, ...),
    )


def _errors(dialect: Dialect, statuses: tuple[int, ...]) -> Responses:
    model = CloudError if dialect == "cloud" else ProductError
    return {s: {"model": model, "description": ERRORS[s]} for s in sorted({*statuses, 500})}


def cloud_doc(data: type[BaseModel], *errors: int) -> Responses:
    """``responses=`` of a cloud route: ``data`` on success, else ``errors`` (and 500)."""
    ok = {"model": envelope("cloud", data), "description": "Success: code 0."}
    return {200: ok, **_errors("cloud", errors)}


def product_doc(data: type[BaseModel], *errors: int) -> Responses:
    """``responses=`` of a ``/product`` route: ``data`` on success, else ``errors`` (and 500)."""
    ok = {"model": envelope("product", data), "description": "Success: code 200."}
    return {200: ok, **_errors("product", errors)}


def stream_doc(events: dict[str, type[BaseModel]], *errors: int) -> Responses:
    """``responses=`` of a ``/product`` Server-Sent Events route (declare it with
    ``response_class=StreamingResponse`` so FastAPI adds no JSON body of its own).

    ``schema`` describes one event, as Open API 3.1 reads it for an event stream:
    its name in ``event`` and, in ``data``, JSON of that event's model.
    """
    one_event = {
        "oneOf": [
            {
                "type": "object",
                "required": ["event", "data"],
                "properties": {
                    "event": {"type": "string", "const": name},
                    "data": {
                        "type": "string",
                        "contentMediaType": "application/json",
                        "contentSchema": model.model_json_schema(),
                    },
                },
            }
            for name, model in events.items()
        ]
    }
    ok = {
        "description": "Server-Sent Events: " + ", ".join(f"`{name}`" for name in events) + ".",
        "content": {"text/event-stream": {"schema": one_event}},
        "headers": {
            "Cache-Control": {"required": True, "schema": {"type": "string", "const": "no-cache"}},
            "X-Accel-Buffering": {
                "description": "asks a proxy (nginx) not to buffer the stream",
                "required": True,
                "schema": {"type": "string", "const": "no"},
            },
        },
    }
    return {200: ok, **_errors("product", errors)}


def tidy(doc: dict[str, Any]) -> dict[str, Any]:
    """Drop the 422 answers FastAPI adds, their schemas, and the untyped object FastAPI
    writes beside a documented success model (the routes return ``dict[str, Any]``)."""
    for operations in doc.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            responses.pop("422", None)
            for response in responses.values():
                for media in response.get("content", {}).values():
                    schema = media.get("schema")
                    if isinstance(schema, dict) and "$ref" in schema:
                        media["schema"] = {"$ref": schema["$ref"]}
    schemas = doc.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    return doc


def install(app: FastAPI) -> None:
    """Serve the tidied document at ``/openapi.json`` (built once, on first request)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = tidy(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

"""The service's HTTP contract, enforced before BentoML parses a request body.

`ContractMiddleware` is an ASGI middleware mounted on the BentoML service
(`add_asgi_middleware`). For `POST` to an API route it checks, in order:

- `Content-Type`: `application/json` (any parameters) or none; anything else
  is 415 (multipart without a boundary used to be a 500 inside the framework);
- the body size: over `max_body_bytes` (by `Content-Length`, or counted while
  reading a chunked body) is 413, answered after draining at most
  `DRAIN_BYTES` so the client reads the answer;
- the body against the API's own input model (the schema `/docs.json`
  publishes: types, `maxItems`, `maxLength`, ranges): a violation is 400.

Every error response leaving the service, whoever made it (this middleware, a
handler, the framework: 404, 405, 500), is rewritten into the one error body,
`ErrorBody` (docs/CONTRACTS.md): `{"error": str, "detail": [{"loc", "msg",
"type"}]}`, with bounded sizes, and logged as one line (no traceback, control
characters escaped). Request values are never echoed whole (`runtime.preview`).
`GET /docs.json` serves BentoML's OpenAPI document with the error responses
documented (400, 413, 415, 429, 500, 503, 504 share `ErrorBody`).

`install_log_filter` makes every log line of the process one bounded line, so
an id or a URL path holding a newline cannot forge a log line (BentoML's access
log prints the decoded path).
"""

from __future__ import annotations

import copy
import http
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from pydantic import BaseModel, Field, ValidationError

logger = logging.getLogger("mtrec.serving")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# Bounds of an error body: message characters, detail entries, characters per entry field.
MAX_MESSAGE_CHARS = 300
MAX_DETAILS = 10
MAX_DETAIL_CHARS = 200
# An error body from downstream longer than this is not read further.
MAX_DOWNSTREAM_ERROR_BYTES = 64 * 1024
# A body over the limit is read and discarded up to this many bytes before the 413,
# so the client (which usually sends everything before reading) gets the answer;
# a larger one is answered at once and its connection closed.
DRAIN_BYTES = 64 * 1024 * 1024
# Longest line any logger of the process writes (the rest is counted).
MAX_LOG_CHARS = 2000
# What `one_line` may add to a cut text: "... (truncated, N chars)".
TRUNCATION_CHARS = 40

JSON_MEDIA_TYPE = "application/json"
# Statuses every API operation documents with the error body.
ERROR_STATUSES = {
    400: "The request breaks the input schema or names unknown items (`detail` says where).",
    413: "The request body is over the size limit.",
    415: "Content-Type is not application/json.",
    429: "Too many requests in flight (traffic.max_concurrency): retry later.",
    500: "Internal error (logged with its traceback).",
    503: "Overloaded (the batch queue is full; Retry-After), or no reward model was packaged.",
    504: "The request was not answered within traffic.timeout.",
}

_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F)}
_CONTROL.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})
_CONTROL.update({c: f"\\u{c:04x}" for c in (0x85, 0x2028, 0x2029)})


def one_line(text: str, limit: int) -> str:
    """`text` with control characters escaped, cut at `limit` characters; a cut line
    ends with the length of the whole text (at most TRUNCATION_CHARS more)."""
    safe = text[: limit + 1].translate(_CONTROL)
    if len(text) <= limit and len(safe) <= limit:
        return safe
    return f"{safe[:limit]}... (truncated, {len(text)} chars)"


class ErrorDetail(BaseModel):
    """One problem of a request, pydantic-style."""

    loc: list[str | int] = Field(
        description='Where: the body field and index (e.g. ["history", 3]); [] for the body.'
    )
    msg: str = Field(
        max_length=MAX_DETAIL_CHARS + TRUNCATION_CHARS,
        description="What is wrong, without the offending value.",
    )
    type: str = Field(description="A machine-readable kind, e.g. string_too_long, unknown_item.")


class ErrorBody(BaseModel):
    """The body of every error response (4xx and 5xx)."""

    error: str = Field(
        max_length=MAX_MESSAGE_CHARS + TRUNCATION_CHARS,
        description="One line; names the field at fault; never the whole offending value.",
    )
    detail: list[ErrorDetail] = Field(
        default_factory=list,
        max_length=MAX_DETAILS,
        description="Per-field problems ([] when there is nothing to add). Absent only "
        "on BentoML's own 429/504, which are answered before the service's code runs.",
    )


def error_content(message: str, detail: Iterable[dict[str, Any]] = ()) -> bytes:
    """A bounded `ErrorBody` as JSON bytes."""
    entries = []
    for entry in list(detail)[:MAX_DETAILS]:
        loc = [
            part if isinstance(part, int) else one_line(str(part), 64)
            for part in list(entry.get("loc") or ())[:8]
        ]
        entries.append(
            {
                "loc": loc,
                "msg": one_line(str(entry.get("msg", "")), MAX_DETAIL_CHARS),
                "type": one_line(str(entry.get("type", "value_error")), 64),
            }
        )
    body = {"error": one_line(message, MAX_MESSAGE_CHARS), "detail": entries}
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


def error_response(
    status: int,
    message: str,
    detail: Iterable[dict[str, Any]] = (),
    headers: dict[str, str] | None = None,
):
    """A starlette Response with the error body (for the service's handlers)."""
    from starlette.responses import Response

    return Response(
        error_content(message, detail),
        status_code=status,
        media_type=JSON_MEDIA_TYPE,
        headers=headers,
    )


def _from_downstream(status: int, raw: bytes) -> tuple[str, list[dict[str, Any]]]:
    """(message, detail) of an error body someone else wrote, whatever its shape."""
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        data = None
    if isinstance(data, list) and data and isinstance(data[0], dict):  # BentoML's 4xx lists
        data = data[0]
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        detail = data.get("detail")
        entries = [d for d in detail if isinstance(d, dict)] if isinstance(detail, list) else []
        return data["error"], entries
    try:
        return http.HTTPStatus(status).phrase, []
    except ValueError:
        return f"HTTP {status}", []


def validation_detail(error: ValidationError) -> tuple[str, list[dict[str, Any]]]:
    """(message naming the first field, detail) of a pydantic error, without inputs."""
    errors = error.errors(include_url=False, include_context=False, include_input=False)
    merged: dict[tuple, dict[str, Any]] = {}
    for entry in errors:
        # A union's branch tag follows a list index (["history", 1, "constrained-str"]):
        # keep the place, join the branches' messages.
        loc: list[str | int] = []
        for part in entry["loc"]:
            if not (loc and isinstance(loc[-1], int) and isinstance(part, str)):
                loc.append(part)
        key = tuple(loc)
        if key in merged:
            merged[key]["msg"] += f"; or {entry['msg']}"
        else:
            merged[key] = {"loc": loc, "msg": entry["msg"], "type": entry["type"]}
    detail = list(merged.values())
    first = detail[0] if detail else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(part) for part in first["loc"]) or "body"
    more = f" (+{len(detail) - 1} more)" if len(detail) > 1 else ""
    return f"{where}: {first['msg']}{more}", detail


class ContractMiddleware:
    """See the module docstring. `service` is the BentoML service (its API routes and
    their input models); `max_body_bytes` the request-size limit."""

    def __init__(self, app: Callable, service: Any, max_body_bytes: int) -> None:
        self.app = app
        self.service = service
        self.max_body_bytes = int(max_body_bytes)
        prefix = (getattr(service, "path_prefix", "") or "").rstrip("/")
        self.inputs: dict[str, type[BaseModel]] = {
            prefix + api.route: api.input_spec for api in service.apis.values()
        }
        self.docs_path = f"{prefix}/docs.json"
        self._docs: bytes | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _ErrorGuard(scope, send)
        path, method = scope["path"], scope["method"]
        if method in ("GET", "HEAD") and path == self.docs_path:
            await self._send_docs(send, head=method == "HEAD")
            return
        model = self.inputs.get(path)
        if model is None or method != "POST":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        content_type = headers.get(b"content-type")
        if content_type is not None:
            media = content_type.split(b";", 1)[0].strip().lower()
            if media != JSON_MEDIA_TYPE.encode():
                shown = one_line(media.decode("latin-1"), 60)
                await _respond(send, 415, f"Content-Type must be {JSON_MEDIA_TYPE}, got {shown!r}")
                return
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                await _respond(send, 400, "Content-Length is not a number")
                return
            if length > self.max_body_bytes:
                if headers.get(b"expect", b"").lower() != b"100-continue":
                    await _drain(receive, DRAIN_BYTES)
                await self._too_large(send, length)
                return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                if message.get("more_body", False):
                    size += await _drain(receive, DRAIN_BYTES)
                await self._too_large(send, size)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            model.model_validate_json(body or b"{}")
        except ValidationError as error:
            message, detail = validation_detail(error)
            await _respond(send, 400, message, detail)
            return

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send: Send, size: int) -> None:
        await _respond(
            send,
            413,
            f"request body of {size} bytes is over the limit of {self.max_body_bytes} bytes",
            headers=[(b"connection", b"close")],
        )

    async def _send_docs(self, send: Send, head: bool) -> None:
        if self._docs is None:
            spec = self.service.openapi_spec.asdict()
            self._docs = json.dumps(document_errors(spec)).encode("utf-8")
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", JSON_MEDIA_TYPE.encode()),
                    (b"content-length", str(len(self._docs)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b"" if head else self._docs})


async def _respond(
    send: Send,
    status: int,
    message: str,
    detail: Iterable[dict[str, Any]] = (),
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    body = error_content(message, detail)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", JSON_MEDIA_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _drain(receive: Receive, limit: int) -> int:
    """Read and discard the rest of a request body, at most `limit` bytes; returns how many."""
    drained = 0
    while drained < limit:
        message = await receive()
        if message["type"] != "http.request":
            break
        drained += len(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return drained


class _ErrorGuard:
    """Wraps `send`: a response with status >= 400 is held, rewritten into the error
    body and logged as one line; other responses pass untouched."""

    def __init__(self, scope: Scope, send: Send) -> None:
        self.scope = scope
        self.send = send
        self.start: Message | None = None
        self.buffer = bytearray()

    async def __call__(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            if message["status"] < 400:
                await self.send(message)
            else:
                self.start = message
            return
        if kind != "http.response.body" or self.start is None:
            await self.send(message)
            return
        if len(self.buffer) < MAX_DOWNSTREAM_ERROR_BYTES:
            self.buffer += message.get("body", b"")[:MAX_DOWNSTREAM_ERROR_BYTES]
        if message.get("more_body", False):
            return
        status = self.start["status"]
        text, detail = _from_downstream(status, bytes(self.buffer))
        body = error_content(text, detail)
        headers = [
            (name, value)
            for name, value in self.start.get("headers", [])
            if name.lower() not in (b"content-length", b"content-type")
        ]
        headers += [
            (b"content-type", JSON_MEDIA_TYPE.encode()),
            (b"content-length", str(len(body)).encode()),
        ]
        self.start = None
        self._log(status, one_line(text, MAX_MESSAGE_CHARS))
        await self.send({"type": "http.response.start", "status": status, "headers": headers})
        await self.send({"type": "http.response.body", "body": body})

    def _log(self, status: int, message: str) -> None:
        where = one_line(self.scope.get("path", ""), 100)
        line = "%s %s -> %d %s"
        args = (self.scope.get("method", "?"), where, status, message)
        if status >= 500:
            logger.error(line, *args)
        else:
            logger.info(line, *args)


def document_errors(spec: dict[str, Any]) -> dict[str, Any]:
    """BentoML's OpenAPI document with the contract's error responses: every API
    operation lists ERROR_STATUSES with `ErrorBody`, and OpenAPI 3.0 nullables."""
    spec = copy.deepcopy(spec)
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    error_schema = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(error_schema.pop("$defs", {}))
    schemas["ErrorBody"] = error_schema
    reference = {"$ref": "#/components/schemas/ErrorBody"}
    for name in ("InvalidArgument", "NotFound", "InternalServerError"):
        schemas.pop(name, None)
    for item in spec.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict) or "x-bentoml-name" not in operation:
                continue
            responses = operation.setdefault("responses", {})
            for status in [code for code in responses if str(code) != "200"]:
                del responses[status]
            for status, description in ERROR_STATUSES.items():
                responses[str(status)] = {
                    "description": description,
                    "content": {JSON_MEDIA_TYPE: {"schema": reference}},
                }
    return _nullable(spec)


def _nullable(node: Any) -> Any:
    """pydantic's `anyOf: [X, {type: null}]` as OpenAPI 3.0's `X + nullable: true`."""
    if isinstance(node, list):
        return [_nullable(child) for child in node]
    if not isinstance(node, dict):
        return node
    node = {key: _nullable(value) for key, value in node.items()}
    options = node.get("anyOf")
    if isinstance(options, list) and {"type": "null"} in options:
        rest = [option for option in options if option != {"type": "null"}]
        del node["anyOf"]
        if len(rest) == 1:
            node.update(rest[0])
        else:
            node["anyOf"] = rest
        node["nullable"] = True
    return node


class OneLineFilter(logging.Filter):
    """Renders a record's message once, as one bounded line (control characters
    escaped); tracebacks (exc_info) are left to the formatter."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep the record as it is
            return True
        record.msg, record.args = one_line(message, MAX_LOG_CHARS), None
        return True


def install_log_filter() -> None:
    """Add `OneLineFilter` to the handlers of the root, BentoML and uvicorn loggers
    (once each), and let this module's one-line records through at INFO."""
    logger.setLevel(logging.INFO)
    for name in (None, "bentoml", "bentoml.access", "uvicorn", "uvicorn.error", "mtrec"):
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, OneLineFilter) for f in handler.filters):
                handler.addFilter(OneLineFilter())

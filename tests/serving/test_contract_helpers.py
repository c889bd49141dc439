"""The contract's building blocks without a server (mtrec.serving.contract)."""

from __future__ import annotations

import json
import logging

from mtrec.serving.contract import (
    MAX_LOG_CHARS,
    ErrorBody,
    OneLineFilter,
    _from_downstream,
    document_errors,
    error_content,
    one_line,
)


def test_one_line_escapes_control_characters_and_bounds_the_length():
    assert one_line("a\nb\r\x1bc", 100) == "a\\nb\\r\\x1bc"
    cut = one_line("x" * 10_000, 50)
    assert cut.startswith("x" * 50) and cut.endswith("(truncated, 10000 chars)")
    assert len(cut) < 100


def test_error_content_is_the_error_body_and_bounded():
    body = json.loads(
        error_content("m" * 50_000, [{"loc": ["history", n], "msg": "y" * 5000} for n in range(99)])
    )
    ErrorBody.model_validate(body)
    assert len(json.dumps(body)) < 4000
    assert len(body["detail"]) == 10


def test_downstream_error_bodies_of_any_shape_are_understood():
    assert _from_downstream(400, b'[{"error": "history: bad"}]') == ("history: bad", [])
    assert _from_downstream(404, b"Not Found") == ("Not Found", [])
    assert _from_downstream(500, b'{"error": "oops", "detail": "text"}') == ("oops", [])
    message, detail = _from_downstream(400, b'{"error": "e", "detail": [{"loc": ["k"]}]}')
    assert detail == [{"loc": ["k"]}]


def test_document_errors_replaces_bentomls_error_schemas_and_nulls():
    spec = {
        "paths": {
            "/recommend": {
                "post": {
                    "x-bentoml-name": "recommend",
                    "responses": {
                        "200": {"description": "ok"},
                        "400": {"$ref": "#/components/schemas/InvalidArgument"},
                        "404": {"description": "Not Found"},
                    },
                }
            },
            "/livez": {"get": {"responses": {"200": {"description": "ok"}}}},
        },
        "components": {
            "schemas": {
                "InvalidArgument": {"type": "object"},
                "Item": {"properties": {"x": {"anyOf": [{"type": "number"}, {"type": "null"}]}}},
            }
        },
    }
    out = document_errors(spec)
    responses = out["paths"]["/recommend"]["post"]["responses"]
    assert "404" not in responses and {"400", "413", "415", "429", "503"} <= set(responses)
    assert "InvalidArgument" not in out["components"]["schemas"]
    assert out["components"]["schemas"]["Item"]["properties"]["x"] == {
        "type": "number",
        "nullable": True,
    }
    assert out["paths"]["/livez"] == spec["paths"]["/livez"]


def test_the_log_filter_makes_every_record_one_bounded_line():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "id %s", ("a\nFORGED" * 1000,), None)
    assert OneLineFilter().filter(record)
    message = record.getMessage()
    assert "\n" not in message and len(message) < MAX_LOG_CHARS + 50

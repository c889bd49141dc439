"""The HTTP contract of the served Bento (docs/CONTRACTS.md, mtrec.serving.contract),
over real HTTP on loopback: declared limits, one error body, 413, 415, no echo of
unbounded input, one-line 4xx logs, fast refusal under overload, and Schemathesis
against the published /docs.json."""

from __future__ import annotations

import concurrent.futures
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from serving_helpers import MAX_HISTORY, serve_bento

from mtrec.serving.contract import ErrorBody
from mtrec.serving.runtime import RuntimeLimits

pytestmark = pytest.mark.slow
ROUTES = ("recommend", "mental_reward", "model_info")
SCHEMATHESIS = str(Path(sys.executable).with_name("st"))


def assert_error_body(answer: httpx.Response) -> dict:
    """The one error shape: exactly {"error": str, "detail": [{"loc", "msg", "type"}]}."""
    assert answer.headers["content-type"].startswith("application/json"), answer.headers
    body = answer.json()
    assert set(body) == {"error", "detail"}, body
    ErrorBody.model_validate(body, strict=True)
    for entry in body["detail"]:
        assert set(entry) == {"loc", "msg", "type"}, entry
    return body


def log_lines_after(log: Path, offset: int) -> list[str]:
    time.sleep(0.5)  # the server flushes its log line after the response
    return log.read_text(errors="replace")[offset:].splitlines()


# --- the schema -----------------------------------------------------------------


def test_openapi_declares_the_limits_and_the_error_responses(served):
    spec = httpx.get(f"{served}/docs.json", timeout=30).json()
    schemas = spec["components"]["schemas"]
    recommend = schemas["recommend__Input"]["properties"]
    reward = schemas["mental_reward__Input"]["properties"]
    limits = RuntimeLimits()
    assert recommend["history"]["maxItems"] == MAX_HISTORY  # what the Bento was packaged with
    assert reward["history"]["maxItems"] == MAX_HISTORY
    assert reward["items"]["maxItems"] == limits.max_items_per_request
    assert reward["items"]["minItems"] == 1
    assert (recommend["k"]["minimum"], recommend["k"]["maximum"]) == (
        1,
        limits.max_items_per_request,
    )
    string_id = next(s for s in recommend["history"]["items"]["anyOf"] if s["type"] == "string")
    assert string_id["maxLength"] == limits.max_id_length
    for route in ROUTES:
        responses = spec["paths"][f"/{route}"]["post"]["responses"]
        for status in ("400", "413", "415", "429", "500", "503", "504"):
            schema = responses[status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (route, status)
    assert schemas["ErrorBody"]["required"] == ["error"]
    # OpenAPI 3.0 has no "null" type: nullable fields say so.
    nullable = schemas["RecommendedItem"]["properties"]["expected_mental_reward"]
    assert nullable["nullable"] is True and nullable["type"] == "number"


# --- one error body -------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "route", "kwargs", "status"),
    [
        ("POST", "recommend", {"json": {"history": ["nope"], "k": 3}}, 400),
        ("POST", "recommend", {"json": {"history": ["m1"], "k": "3"}}, 400),
        ("POST", "recommend", {"json": {"history": [1.5, None, []], "k": 3}}, 400),
        ("POST", "recommend", {"json": {"history": ["m1"], "k": 30}}, 400),  # over catalogue - 1
        ("POST", "recommend", {"json": ["m1"]}, 400),
        ("POST", "mental_reward", {"json": {"history": [], "items": []}}, 400),
        ("POST", "mental_reward", {"json": {"history": [], "items": ["ghost"] * 5}}, 400),
        ("POST", "model_info", {"json": [1, 2]}, 400),
        (
            "POST",
            "recommend",
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            400,
        ),
        (
            "POST",
            "recommend",
            {"content": b"\xff\xfe", "headers": {"content-type": "application/json"}},
            400,
        ),
        ("GET", "recommend", {}, 405),
        ("POST", "no_such_route", {"json": {}}, 404),
    ],
)
def test_every_error_has_the_one_body(served, method, route, kwargs, status):
    answer = httpx.request(method, f"{served}/{route}", timeout=30, **kwargs)
    assert answer.status_code == status, answer.text
    assert_error_body(answer)


def test_validation_errors_name_the_field_in_detail(served):
    body = {"history": ["m1", 2.5], "k": 0}
    answer = httpx.post(f"{served}/recommend", json=body, timeout=30)
    assert answer.status_code == 400
    error = assert_error_body(answer)
    fields = {entry["loc"][0] for entry in error["detail"]}
    assert {"history", "k"} <= fields
    assert error["error"].split(":")[0] in {"history.1", "k"}
    assert ["history", 1] in [entry["loc"] for entry in error["detail"]]


# --- content types and sizes ----------------------------------------------------


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/form-data",  # no boundary: a 500 inside BentoML before the contract
        "multipart/form-data; boundary=xyz",
        "application/x-www-form-urlencoded",
        "text/plain",
        "application/vnd.bentoml+pickle",
        "application/xml",
    ],
)
def test_unsupported_content_types_are_415(served, route, content_type):
    answer = httpx.post(
        f"{served}/{route}",
        content=b'{"history": ["m1"], "k": 3}',
        headers={"content-type": content_type},
        timeout=30,
    )
    assert answer.status_code == 415, answer.text
    assert "application/json" in assert_error_body(answer)["error"]


def test_json_with_a_charset_parameter_is_accepted(served):
    answer = httpx.post(
        f"{served}/recommend",
        content=b'{"history": ["m1"], "k": 3}',
        headers={"content-type": "application/json; charset=utf-8"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text


def test_a_20_mb_id_gets_a_413_of_under_1_kb(served):
    body = b'{"history": ["' + b"a" * (20 * 2**20) + b'"], "k": 3}'
    answer = httpx.post(
        f"{served}/recommend",
        content=body,
        headers={"content-type": "application/json"},
        timeout=60,
    )
    assert answer.status_code == 413, answer.text[:200]
    assert len(answer.content) <= 1024
    assert "a" * 100 not in answer.text
    assert_error_body(answer)


def test_a_chunked_body_over_the_limit_is_413(served):
    def chunks():
        yield b'{"history": ["'
        for _ in range(40):
            yield b"b" * 2**16
        yield b'"]}'

    answer = httpx.post(
        f"{served}/mental_reward",
        content=chunks(),  # no Content-Length: counted while read
        headers={"content-type": "application/json"},
        timeout=60,
    )
    assert answer.status_code == 413
    assert len(answer.content) <= 1024


@pytest.mark.parametrize(
    "history",
    [
        ["x" * 100_000],  # over maxLength: the schema refuses it
        ["y" * RuntimeLimits().max_id_length],  # within the schema, unknown
        [f"ghost-{n}-" + "z" * 100 for n in range(MAX_HISTORY)],  # many unknown ids
    ],
)
def test_unknown_or_overlong_ids_are_not_echoed(served, server, history):
    offset = server.log.stat().st_size
    answer = httpx.post(f"{served}/recommend", json={"history": history, "k": 3}, timeout=30)
    assert answer.status_code == 400
    assert len(answer.content) <= 1024, len(answer.content)
    assert_error_body(answer)
    logged = "\n".join(log_lines_after(server.log, offset))
    assert "x" * 200 not in logged and "z" * 100 not in logged


# --- logs -----------------------------------------------------------------------


def test_a_4xx_is_one_log_line_without_traceback_and_ids_cannot_forge_lines(served, server):
    offset = server.log.stat().st_size
    forged = "FORGED-LINE [ERROR] evil"
    answer = httpx.post(
        f"{served}/recommend", json={"history": [f"m1\n{forged}"], "k": 3}, timeout=30
    )
    assert answer.status_code == 400
    path = httpx.get(f"{served}/recommend%0A{forged.replace(' ', '%20')}", timeout=30)
    assert path.status_code == 404
    lines = log_lines_after(server.log, offset)
    assert not any(line.startswith("FORGED") for line in lines), lines
    assert not any("Traceback" in line for line in lines), lines
    ours = [line for line in lines if "POST /recommend -> 400" in line]
    assert len(ours) == 1, lines
    assert "unknown item id" in ours[0] and "\\n" in ours[0]


# --- overload and batching ------------------------------------------------------


def test_concurrent_requests_share_forward_passes(served):
    def one(n: int) -> int:
        body = {"history": [f"m{1 + n % 30}", f"m{1 + (n * 7) % 30}"], "k": 5}
        return httpx.post(f"{served}/recommend", json=body, timeout=60).status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        codes = list(pool.map(one, range(96)))
    assert codes == [200] * 96
    batching = httpx.post(f"{served}/model_info", json={}, timeout=30).json()["batching"]
    assert batching["largest_batch"] > 1, batching
    assert batching["batches"] < batching["jobs"]


def test_overload_is_refused_fast_with_429(packaged, tmp_path):
    """Above traffic.max_concurrency the answer is an immediate 429 with the error
    shape BentoML gives it, never a queue of seconds."""
    summary, _ = packaged
    env = {
        "MTREC_SERVE_MAX_CONCURRENCY": "2",
        "MTREC_SERVE_MAX_BATCH": "1",
        "MTREC_SERVE_WORKERS": "1",
    }
    with serve_bento(summary["bento"], tmp_path / "overload.log", env) as small:
        limits = httpx.Limits(max_connections=48)
        with httpx.Client(base_url=small.url, timeout=60, limits=limits) as client:

            def one(n: int) -> tuple[int, float, dict]:
                began = time.perf_counter()
                body = {"history": [f"m{1 + n % 30}"], "k": 5}
                answer = client.post("/mental_reward", json={**body, "items": ["m3"] * 200})
                return answer.status_code, time.perf_counter() - began, answer.json()

            with concurrent.futures.ThreadPoolExecutor(max_workers=48) as pool:
                results = list(pool.map(one, range(192)))
    codes = [code for code, _, _ in results]
    assert set(codes) <= {200, 429}, set(codes)
    assert codes.count(429) > 0 and codes.count(200) > 0
    refused = sorted(seconds for code, seconds, _ in results if code == 429)
    assert refused[len(refused) // 2] < 1.0, refused  # median refusal, on a shared machine
    for code, _, body in results:
        if code == 429:
            assert isinstance(body["error"], str)
            ErrorBody.model_validate(body)


# --- Schemathesis -----------------------------------------------------------------


def test_schemathesis_finds_no_5xx_and_no_schema_violation(served, tmp_path):
    """Bounded fuzzing of every operation in /docs.json (coverage + fuzzing phases).

    Checks: no 5xx, responses match their documented schema, status codes and
    content types are documented ones, schema-invalid input is refused. Not
    `positive_data_acceptance`: schema-valid ids outside the catalogue are a 400
    (the catalogue is not in the schema).
    """
    checks = [
        "not_a_server_error",
        "response_schema_conformance",
        "status_code_conformance",
        "content_type_conformance",
        "negative_data_rejection",
    ]
    command = [
        SCHEMATHESIS,
        "run",
        f"{served}/docs.json",
        "--checks",
        ",".join(checks),
        "--max-examples",
        "40",
        "--seed",
        "20261129",
        "--workers",
        "2",
        "--generation-database",
        "none",
        "--request-timeout",
        "30",
        "--no-color",
    ]
    done = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=240, check=False
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]

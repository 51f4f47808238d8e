"""Request bodies on both POSTs that take one (a deployment request, a key rotation): read by shared/wire.py before
anything else, and refused with 415, 413 or a 400 naming the limit, before the service hears of them."""

import json

import pytest

from handlers import deployments, lifecycle
from shared.problems import CONTENT_TYPE, PROBLEM_TYPE_BASE
from shared.wire import HTTP_MAX_BYTES, MAX_DEPTH, MAX_STRING
from tests.handlers.handler_support import (
    AUTHENTICATED_HEADERS,
    MODEL,
    WORKSPACE,
    http_request,
    json_body,
    user_function,
)

submit = user_function(deployments.submit_deployment)
rotate = user_function(lifecycle.rotate_deployment_keys)

BODY = {"workspaceId": WORKSPACE, "modelId": MODEL, "ticket": "CHG-1"}
ENDPOINTS = {
    "submit": (submit, "/api/deployments", {}),
    "rotate": (rotate, "/api/deployments/d-1/rotate-keys", {"deploymentId": "d-1"}),
}


@pytest.fixture(params=sorted(ENDPOINTS))
def post(request, service, monkeypatch):
    """POST to one of the endpoints; the lifecycle service is never reached by a refused body."""
    from shared.deployments import composition

    monkeypatch.setattr(composition, "lifecycle_service", _unreachable)
    handler, path, route_params = ENDPOINTS[request.param]

    def send(raw: bytes, content_type: str | None = "application/json"):
        headers = {**AUTHENTICATED_HEADERS, "Content-Type": content_type}
        return handler(http_request("POST", path, raw_body=raw, headers=headers, route_params=route_params))

    send.service = service
    return send


def _unreachable():
    raise AssertionError("a refused body must not reach the service")


def problem(response, status: int, slug: str) -> dict:
    assert response.status_code == status
    assert response.mimetype == CONTENT_TYPE
    body = json_body(response)
    assert (body["type"], body["status"]) == (PROBLEM_TYPE_BASE + slug, status)
    return body


@pytest.mark.parametrize(
    ("content_type", "words"),
    [
        ("text/plain", "'text/plain' is not JSON"),
        ("application/x-www-form-urlencoded", "is not JSON"),
        ("application/json; charset=utf-16", "charset other than UTF-8"),
        ("application/json; charset=iso-8859-1", "charset other than UTF-8"),
        (None, "has no Content-Type"),
    ],
)
def test_a_body_that_is_not_json_by_its_content_type_is_a_415(post, content_type, words):
    body = problem(post(json.dumps(BODY).encode(), content_type), 415, "unsupported-media-type")

    assert words in body["detail"]
    assert "application/json" in body["detail"]
    assert body["limit"] == {"name": "media-type"}
    assert post.service.calls == []


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=UTF-8", "application/merge-patch+json", "APPLICATION/JSON"],
)
def test_json_in_utf8_is_read_whatever_the_spelling_of_its_type(service, content_type):
    headers = {**AUTHENTICATED_HEADERS, "Content-Type": content_type}

    response = submit(http_request("POST", "/api/deployments", body=BODY, headers=headers))

    assert response.status_code == 202
    assert service.operations() == ["submit"]


def test_a_body_over_one_mib_is_a_413_naming_the_limit(post):
    raw = json.dumps({**BODY, "tags": {"pad": " " * HTTP_MAX_BYTES}}).encode()

    body = problem(post(raw), 413, "payload-too-large")

    assert body["detail"] == f"The body is {len(raw):,} bytes; the limit is 1,048,576 bytes (1 MiB)."
    assert body["limit"] == {"name": "size", "maximum": HTTP_MAX_BYTES}
    assert "Operation-Location" not in post(raw).headers


def test_the_media_type_is_checked_before_the_size(post):
    problem(post(b" " * (HTTP_MAX_BYTES + 1), "text/plain"), 415, "unsupported-media-type")


@pytest.mark.parametrize(
    ("raw", "limit", "maximum", "words"),
    [
        (b'{"a": ' * MAX_DEPTH + b"{}" + b"}" * MAX_DEPTH, "depth", MAX_DEPTH, "more than 32 deep"),
        (b"[" * 2000 + b"]" * 2000, "depth", MAX_DEPTH, "more than 32 deep"),
        (json.dumps({**BODY, "ticket": "T" * (MAX_STRING + 1)}).encode(), "string-length", MAX_STRING, "at ticket"),
        (b'{"ticket": "a", "ticket": "b"}', "duplicate-key", None, "'ticket' more than once"),
        (json.dumps(BODY).encode("utf-16"), "encoding", None, "UTF-16LE"),
        (json.dumps(BODY).encode("utf-16-le"), "encoding", None, "NUL byte"),
        (b'{"ticket": "Zo\xeb"}', "encoding", None, "is not UTF-8"),
        (b'{"ticket": "\\ud800"}', "encoding", None, "unpaired surrogate"),
        (b'{"ticket": NaN}', "json-syntax", None, "NaN is not a JSON value"),
        (b"{'ticket': 1}", "json-syntax", None, "is not JSON"),
        (b'{"n": ' + b"1" * 100 + b"}", "number-length", 64, "the limit is 64"),
        (b"[1, 2]", "top-level", None, "must be a JSON object, not an array"),
        (b'"text"', "top-level", None, "not a string"),
        (b"", "empty", None, "is empty"),
    ],
)
def test_every_other_broken_rule_is_a_400_whose_detail_names_the_limit(post, raw, limit, maximum, words):
    body = problem(post(raw), 400, "validation-failed")

    assert words in body["detail"]
    assert body["limit"]["name"] == limit
    assert body["limit"].get("maximum") == maximum
    assert body["errors"][0]["message"] == body["detail"]
    assert post.service.calls == []


def test_a_too_long_string_is_named_by_its_field(post):
    raw = json.dumps({"tags": {"owner": "x" * (MAX_STRING + 1)}}).encode()

    body = problem(post(raw), 400, "validation-failed")

    assert body["errors"] == [{"field": "tags.owner", "message": body["detail"]}]
    assert body["limit"] == {"name": "string-length", "maximum": 8192, "where": "tags.owner"}


def test_a_utf8_byte_order_mark_is_ignored(service):
    raw = b"\xef\xbb\xbf" + json.dumps(BODY).encode()
    headers = {**AUTHENTICATED_HEADERS, "Content-Type": "application/json; charset=utf-8"}

    response = submit(http_request("POST", "/api/deployments", raw_body=raw, headers=headers))

    assert response.status_code == 202
    assert service.calls[0][1]["request"].ticket == "CHG-1"


def test_an_empty_body_without_a_content_type_is_refused_as_empty_not_as_its_type(post):
    body = problem(post(b"", None), 400, "validation-failed")

    assert body["detail"] == "The body is empty; send a JSON object."


def test_authentication_is_checked_before_the_body(service):
    response = submit(http_request("POST", "/api/deployments", raw_body=b"[" * 5000, headers={"Content-Type": None}))

    assert response.status_code == 401

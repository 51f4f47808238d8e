import pytest

from shared.problems import (
    BROKER_PERMISSIONS_MISSING,
    CATALOG,
    CONTENT_TYPE,
    PROBLEM_TYPE_BASE,
    VALIDATION_FAILED,
    Problem,
)

REQUIRED_SLUGS = {
    "validation-failed": 400,
    "payload-too-large": 413,
    "unsupported-media-type": 415,
    "model-not-approved": 403,
    "workspace-not-allowed": 403,
    "broker-permissions-missing": 403,
    "requester-forbidden": 403,
    "region-unsupported": 422,
    "model-unknown": 422,
    "deployment-conflict": 409,
    "endpoint-name-invalid": 400,
    "not-found": 404,
    "unauthorized": 401,
    "idempotency-conflict": 422,
    "subscription-in-use": 409,
    "deployment-state-conflict": 409,
    "approver-required": 403,
    "self-approval-forbidden": 403,
    "run-state-conflict": 409,
    "approval-rejected": 403,
    "approval-expired": 403,
    "approval-withdrawn": 409,
    "azure-unavailable": 503,
    "internal": 500,
}


def test_the_catalog_defines_every_failure_type_once():
    assert {slug: kind.status for slug, kind in CATALOG.items()} == REQUIRED_SLUGS
    assert len({kind.uri for kind in CATALOG.values()}) == len(CATALOG)
    assert all(kind.title and kind.uri == PROBLEM_TYPE_BASE + slug for slug, kind in CATALOG.items())


def test_a_problem_serialises_to_rfc_9457_members():
    problem = Problem.of(
        "broker-permissions-missing",
        "The broker's identity lacks ...",
        instance="/api/deployments/run-1",
        missingActions={"/subscriptions/x": ["Microsoft.SaaS/register/action"]},
    )

    assert CONTENT_TYPE == "application/problem+json"
    assert problem.status == 403
    assert problem.to_dict() == {
        "type": BROKER_PERMISSIONS_MISSING.uri,
        "title": BROKER_PERMISSIONS_MISSING.title,
        "status": 403,
        "detail": "The broker's identity lacks ...",
        "instance": "/api/deployments/run-1",
        "missingActions": {"/subscriptions/x": ["Microsoft.SaaS/register/action"]},
    }


def test_optional_members_are_left_out():
    assert Problem.of("not-found").to_dict() == {
        "type": PROBLEM_TYPE_BASE + "not-found",
        "title": "No such resource",
        "status": 404,
    }


def test_an_unknown_slug_is_a_programming_error():
    with pytest.raises(KeyError):
        Problem.of("teapot")


@pytest.mark.parametrize("name", ["status", "type", "ab", "1abc", "with-dash"])
def test_extension_names_must_not_clash_or_break_the_rfc_rules(name):
    with pytest.raises(ValueError, match=f"'{name}' cannot be a problem extension member."):
        Problem(VALIDATION_FAILED, extensions={name: 1})


def test_validation_problems_list_their_fields_once():
    errors = [
        {"field": "modelId", "message": "The model id is empty."},
        {"field": "tags", "message": "A tag name is blank."},
        {"field": "modelId", "message": "again"},
    ]

    body = Problem.validation(errors, instance="/api/deployments").to_dict()

    assert body["status"] == 400
    assert body["type"] == VALIDATION_FAILED.uri
    assert body["detail"] == "Invalid fields: modelId, tags."
    assert body["errors"] == errors
    assert body["instance"] == "/api/deployments"

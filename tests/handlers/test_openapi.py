import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from handlers import deployments, openapi
from handlers.openapi import ROUTE_PREFIX, openapi_document
from shared.catalog import ModelCatalog
from shared.health import check_health
from shared.problems import CATALOG, Problem
from shared.requests import DeploymentRequest, QueueDeploymentRequest
from shared.runs import RunStatus
from tests.handlers.handler_support import (
    AUTHENTICATED_HEADERS,
    MODEL,
    ORIGIN,
    WORKSPACE,
    http_request,
    json_body,
    user_function,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
serve_document = user_function(openapi.openapi)
submit = user_function(deployments.submit_deployment)
list_runs = user_function(deployments.list_deployments)


@pytest.fixture(scope="module")
def registered_http_functions() -> list[dict[str, Any]]:
    # A fresh interpreter: FunctionApp.get_functions() may be called only once per app and process.
    script = (
        "import json, function_app\n"
        "functions = [f for f in function_app.app.get_functions() if f.is_http_function()]\n"
        "print(json.dumps([{'name': f.get_function_name(), 'route': f.get_trigger().route,\n"
        "    'methods': [m.value for m in f.get_trigger().methods],\n"
        "    'auth': f.get_trigger().auth_level.value} for f in functions]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=60
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def _validator(schema_name: str) -> Draft202012Validator:
    """Validates against one component schema, resolving its $refs inside the document (as OpenAPI 3.1 does)."""
    document = openapi_document()
    return Draft202012Validator({"$ref": f"#/components/schemas/{schema_name}", "components": document["components"]})


def _errors(schema_name: str, instance: object) -> list[str]:
    return [error.message for error in _validator(schema_name).iter_errors(instance)]


def _operations() -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (path, method): operation
        for path, item in openapi_document()["paths"].items()
        for method, operation in item.items()
    }


def test_every_http_function_is_described_under_its_route_method_and_name(registered_http_functions):
    operations = _operations()

    described = set()
    for function in registered_http_functions:
        for method in function["methods"]:
            key = (f"{ROUTE_PREFIX}/{function['route']}", method.lower())
            assert key in operations, f"{function['name']} ({method} {function['route']}) is not in the document"
            assert operations[key]["operationId"] == function["name"]
            assert (operations[key].get("security") == []) == (function["auth"] == "anonymous")
            described.add(key)
    assert described == set(operations), "the document describes no route the app does not serve"


def test_the_expected_routes_are_registered(registered_http_functions):
    routes = {(function["methods"][0], function["route"], function["auth"]) for function in registered_http_functions}

    assert routes == {
        ("GET", "health", "anonymous"),
        ("GET", "openapi.json", "anonymous"),
        ("POST", "deployments", "function"),
        ("GET", "deployments", "function"),
        ("GET", "deployments/{runId}", "function"),
        ("DELETE", "deployments/{runId}", "function"),
        ("POST", "deployments/{runId}/rotate-keys", "function"),
        ("GET", "models/availability", "function"),
        ("GET", "hygiene/findings", "function"),
        ("GET", "hygiene/report", "function"),
    }


def test_bodies_are_described_by_the_models_the_code_validates_with():
    schemas = openapi_document()["components"]["schemas"]

    assert schemas["DeploymentRequest"] == DeploymentRequest.model_json_schema(by_alias=True)
    assert (
        schemas["QueueDeploymentRequest"]["properties"]
        == QueueDeploymentRequest.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")[
            "properties"
        ]
    )
    body = _operations()[(f"{ROUTE_PREFIX}/deployments", "post")]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/DeploymentRequest"}


def test_every_reference_resolves_to_a_component():
    text = json.dumps(openapi_document())
    schemas = openapi_document()["components"]["schemas"]

    references = {part.split('"')[0] for part in text.split('"$ref": "#/components/schemas/')[1:]}
    assert references
    assert references <= set(schemas)
    assert "$defs" not in text


def test_problem_types_are_the_catalog_and_each_is_answered_by_some_operation():
    problem = openapi_document()["components"]["schemas"]["Problem"]
    descriptions = " ".join(
        response["description"]
        for operation in _operations().values()
        for status, response in operation["responses"].items()
        if "application/problem+json" in response.get("content", {})
    )

    assert problem["properties"]["type"]["enum"] == [kind.uri for kind in CATALOG.values()]
    for slug, kind in CATALOG.items():
        assert f"{slug}: {kind.title}" in descriptions, f"no operation answers with {slug}"


def test_problem_responses_sit_under_their_own_status():
    for operation in _operations().values():
        for status, response in operation["responses"].items():
            for line in response["description"].split("; "):
                slug = line.split(":")[0]
                if slug in CATALOG:
                    assert CATALOG[slug].status == int(status)


def test_real_responses_match_the_schemas(service):
    accepted = submit(http_request("POST", "/api/deployments", body=_body(), headers=AUTHENTICATED_HEADERS))
    invalid = submit(http_request("POST", "/api/deployments", body={"modelId": 3}, headers=AUTHENTICATED_HEADERS))
    submit(http_request("POST", "/api/deployments", body=_body(), headers=AUTHENTICATED_HEADERS))
    page = list_runs(http_request("GET", "/api/deployments", params={"pageSize": "1"}))

    assert _errors("RunRecord", json_body(accepted)) == []
    assert _errors("Problem", json_body(invalid)) == []
    assert _errors("RunPage", json_body(page)) == []
    assert json_body(page)["nextLink"] is not None, "the page example must carry a link to prove it fits"


def test_a_finished_run_and_a_rejection_match_the_schemas(service):
    service.reject_with = Problem.of("region-unsupported", "Use eastus2.", supportedRegions=["eastus2"])

    rejected = submit(http_request("POST", "/api/deployments", body=_body(), headers=AUTHENTICATED_HEADERS))

    assert _errors("Problem", json_body(rejected)) == []
    public = service.runs["run-1"].to_public_dict()
    assert _errors("RunRecord", public) == []
    assert service.runs["run-1"].status is RunStatus.REJECTED
    described = openapi_document()["components"]["schemas"]["RunRecord"]["properties"]
    assert set(described) == set(public), "the schema names exactly the members a public run has"


def test_the_schemas_refuse_what_the_broker_never_sends():
    assert _errors("RunRecord", {"id": "run-1"})
    assert _errors("Problem", {"type": "https://example.com/other", "title": "x", "status": 400})
    assert _errors("RunPage", {"value": []})


def test_availability_and_health_bodies_match_their_schemas():
    classification = ModelCatalog.load().classify(MODEL).to_dict()
    answer = {
        **classification,
        "supportedRegions": ["eastus2"],
        "workspace": {"id": WORKSPACE, "location": "eastus2", "supported": True},
    }

    assert _errors("ModelAvailability", answer) == []
    assert _errors("Health", check_health({"storage": lambda: None}).as_dict()) == []


def test_the_document_is_served_as_json_with_the_callers_origin_as_server():
    response = serve_document(http_request("GET", "/api/openapi.json"))

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    document = json_body(response)
    assert document["openapi"] == "3.1.0"
    assert document["servers"] == [{"url": ORIGIN}]
    assert {key: value for key, value in document.items() if key != "servers"} == json.loads(
        json.dumps(openapi_document())
    )


def test_the_document_is_built_once():
    assert openapi_document() is openapi_document()


def _body() -> dict[str, str]:
    return {"workspaceId": WORKSPACE, "modelId": MODEL}

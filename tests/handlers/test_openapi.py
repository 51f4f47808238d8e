import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from handlers import deployments, openapi, runs
from handlers import hygiene as hygiene_handlers
from handlers.asyncapi import contract_examples
from handlers.openapi import ROUTE_PREFIX, openapi_document
from shared.access import Caller
from shared.catalog import ModelCatalog
from shared.deployment import Deployment, Phase
from shared.deployments import composition as deployment_composition
from shared.health import check_health
from shared.hygiene import composition as hygiene_composition
from shared.hygiene.report import ScanReport, VisibleScanReport
from shared.problems import CATALOG, Problem
from shared.requests import DeploymentRequest, QueueDeploymentRequest
from shared.runs import RunStatus
from tests.deployments.fakes import FakeAuthorization
from tests.deployments.scenario import DIRECT_MODEL, REQUESTER, build_world
from tests.deployments.scenario import request as scenario_request
from tests.handlers.handler_support import (
    AUTHENTICATED_HEADERS,
    MODEL,
    ORIGIN,
    WORKSPACE,
    http_request,
    json_body,
    user_function,
)
from tests.hygiene.conftest import World as HygieneWorld
from tests.hygiene.fakes import WS_A, WS_B, endpoint
from tests.hygiene.test_handlers import AUDITOR as HYGIENE_AUDITOR
from tests.hygiene.test_handlers import NOBODY, Readers
from tests.hygiene.test_handlers import get as get_hygiene

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_REF = "#/components/schemas/{model}"
serve_document = user_function(openapi.openapi)
submit = user_function(deployments.submit_deployment)
get_deployment = user_function(deployments.get_deployment)
list_deployments = user_function(deployments.list_deployments)
get_run = user_function(runs.get_run)
list_runs = user_function(runs.list_runs)


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
        ("GET", "asyncapi.json", "anonymous"),
        ("GET", "docs", "anonymous"),
        ("GET", "docs/swagger-ui.css", "anonymous"),
        ("GET", "docs/swagger-ui-bundle.js", "anonymous"),
        ("GET", "docs/docs.js", "anonymous"),
        ("POST", "deployments", "function"),
        ("POST", "deployments/what-if", "function"),
        ("GET", "deployments", "function"),
        ("GET", "deployments/{deploymentId}", "function"),
        ("DELETE", "deployments/{deploymentId}", "function"),
        ("POST", "deployments/{deploymentId}/repair", "function"),
        ("POST", "deployments/{deploymentId}/rotate-keys", "function"),
        ("GET", "runs", "function"),
        ("GET", "runs/{runId}", "function"),
        ("POST", "runs/{runId}/approve", "function"),
        ("POST", "runs/{runId}/reject", "function"),
        ("GET", "models", "function"),
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


def test_bodies_of_the_deployment_resource_are_described_by_its_model():
    schemas = openapi_document()["components"]["schemas"]

    generated = Deployment.model_json_schema(by_alias=True, mode="serialization", ref_template=SCHEMA_REF)
    described = schemas["Deployment"]
    assert described["properties"] == generated["properties"]
    assert described["required"] == generated["required"]
    assert schemas["Phase"]["enum"] == [phase.value for phase in Phase]
    assert schemas["RunStatus"]["enum"] == [status.value for status in RunStatus]
    run = schemas["RunRecord"]["properties"]
    assert {"deploymentId", "operation", "joined", "warnings", "resourceLocation"} <= set(run)
    assert "Verifying" in schemas["RunStatus"]["enum"]


def test_every_operation_is_described_with_its_statuses_and_headers():
    operations = _operations()

    def statuses(path: str, method: str) -> set[str]:
        return set(operations[(f"{ROUTE_PREFIX}{path}", method)]["responses"])

    assert statuses("/deployments", "post") == {
        *("200", "202", "400", "401", "403", "404", "409", "413", "415", "422", "500", "503")
    }
    assert statuses("/deployments/{deploymentId}", "delete") >= {"200", "202", "404", "409", "503"}
    assert statuses("/deployments/{deploymentId}/repair", "post") >= {"200", "202", "404", "409", "503"}
    assert statuses("/deployments/{deploymentId}/rotate-keys", "post") >= {"202", "404", "409", "413", "415", "503"}
    for path in ("/deployments", "/deployments/{deploymentId}/rotate-keys"):  # each POST that takes a body
        responses = operations[(f"{ROUTE_PREFIX}{path}", "post")]["responses"]
        assert responses["413"]["description"].startswith("payload-too-large: ")
        assert responses["415"]["description"].startswith("unsupported-media-type: ")
        assert "headers" not in responses["413"], "no run records a body refused before it is read"
    reads = ("/deployments/{deploymentId}", "/runs/{runId}", "/deployments", "/runs", "/hygiene/findings")
    for path in reads:  # each read needs a caller and may read their access to a workspace
        assert statuses(path, "get") >= {"200", "401", "500", "503"}, path
        assert "WWW-Authenticate" in operations[(f"{ROUTE_PREFIX}{path}", "get")]["responses"]["401"]["headers"]
    for path in ("/deployments/{deploymentId}", "/runs/{runId}"):
        assert statuses(path, "get") == {"200", "401", "404", "500", "503"}, path
    for path, method in [
        ("/deployments", "post"),
        ("/deployments/{deploymentId}", "delete"),
        ("/deployments/{deploymentId}/repair", "post"),
    ]:
        accepted = operations[(f"{ROUTE_PREFIX}{path}", method)]["responses"]["202"]
        assert set(accepted["headers"]) == {"Location", "Operation-Location"}
        assert accepted["content"]["application/json"]["schema"] == {"$ref": SCHEMA_REF.format(model="RunRecord")}
    for (path, method), operation in operations.items():
        unavailable = operation["responses"].get("503")
        if unavailable is not None and "application/problem+json" in unavailable["content"]:
            assert "Retry-After" in unavailable["headers"], f"{method} {path}"
    ready = operations[(f"{ROUTE_PREFIX}/deployments", "post")]["responses"]["200"]
    assert ready["content"]["application/json"]["schema"] == {
        "oneOf": [{"$ref": SCHEMA_REF.format(model="Deployment")}, {"$ref": SCHEMA_REF.format(model="RunRecord")}]
    }
    deleted = operations[(f"{ROUTE_PREFIX}/deployments/{{deploymentId}}", "delete")]["responses"]["200"]
    assert deleted["content"]["application/json"]["schema"] == {"$ref": SCHEMA_REF.format(model="Deployment")}
    listed = {
        path: {
            parameter["name"]
            for parameter in operations[(f"{ROUTE_PREFIX}{path}", "get")]["parameters"]
            if parameter["in"] == "query"
        }
        for path in ("/deployments", "/runs")
    }
    assert listed["/deployments"] == {"workspaceId", "modelId", "phase", "ticket", "continuationToken", "pageSize"}
    assert listed["/runs"] == {"deploymentId", "workspaceId", "status", "ticket", "continuationToken", "pageSize"}


def test_real_responses_match_the_schemas(service):
    accepted = submit(http_request("POST", "/api/deployments", body=_body(), headers=AUTHENTICATED_HEADERS))
    invalid = submit(http_request("POST", "/api/deployments", body={"modelId": 3}, headers=AUTHENTICATED_HEADERS))
    submit(http_request("POST", "/api/deployments", body=_body("Phi-4"), headers=AUTHENTICATED_HEADERS))
    run_page = list_runs(http_request("GET", "/api/runs", params={"pageSize": "1"}, headers=AUTHENTICATED_HEADERS))
    deployment_page = list_deployments(
        http_request("GET", "/api/deployments", params={"pageSize": "1"}, headers=AUTHENTICATED_HEADERS)
    )
    the_id = json_body(accepted)["deploymentId"]
    service.finish(json_body(accepted)["id"])
    finished = get_run(
        http_request("GET", "/api/runs/run-1", headers=AUTHENTICATED_HEADERS, route_params={"runId": "run-1"})
    )
    deployment = get_deployment(
        http_request(
            "GET", f"/api/deployments/{the_id}", headers=AUTHENTICATED_HEADERS, route_params={"deploymentId": the_id}
        )
    )
    ready = submit(http_request("POST", "/api/deployments", body=_body(), headers=AUTHENTICATED_HEADERS))

    assert _errors("RunRecord", json_body(accepted)) == []
    assert _errors("Problem", json_body(invalid)) == []
    assert _errors("RunPage", json_body(run_page)) == []
    assert _errors("DeploymentPage", json_body(deployment_page)) == []
    assert json_body(run_page)["nextLink"] is not None, "the page example must carry a link to prove it fits"
    assert json_body(deployment_page)["nextLink"] is not None
    assert "resourceLocation" in json_body(finished)
    assert _errors("RunRecord", json_body(finished)) == []
    assert _errors("Deployment", json_body(deployment)) == []
    assert json_body(deployment)["status"]["phase"] == "Ready"
    assert ready.status_code == 200
    ready_schema = _operations()[(f"{ROUTE_PREFIX}/deployments", "post")]["responses"]["200"]
    assert _errors_against(ready_schema["content"]["application/json"]["schema"], json_body(ready)) == []


def test_a_deployment_made_by_the_real_service_matches_its_schema():
    world = build_world()
    submission = world.service.submit(scenario_request(DIRECT_MODEL), caller=REQUESTER)
    world.drain()

    deployment = world.service.get_deployment(submission.deployment.id, caller=Caller.of(REQUESTER)).to_public_dict()
    run = world.run(submission.run.id).to_public_dict()

    assert _errors("Deployment", deployment) == []
    assert len(deployment["status"]["conditions"]) == 4
    assert _errors("RunRecord", run) == []


def test_a_finished_run_and_a_rejection_match_the_schemas(service):
    service.reject_with = Problem.of("region-unsupported", "Use eastus2.", supportedRegions=["eastus2"])

    rejected = submit(http_request("POST", "/api/deployments", body=_body(), headers=AUTHENTICATED_HEADERS))

    assert _errors("Problem", json_body(rejected)) == []
    public = service.runs["run-1"].to_public_dict()
    assert _errors("RunRecord", public) == []
    assert service.runs["run-1"].status is RunStatus.REJECTED
    described = openapi_document()["components"]["schemas"]["RunRecord"]["properties"]
    assert set(described) == set(public) | {"resourceLocation"}, "the schema names exactly what a public run has"


def test_the_schemas_refuse_what_the_broker_never_sends():
    assert _errors("RunRecord", {"id": "run-1"})
    assert _errors("Deployment", {"id": "d", "spec": {}})
    assert _errors("Problem", {"type": "https://example.com/other", "title": "x", "status": 400})
    assert _errors("RunPage", {"value": []})
    assert _errors("DeploymentPage", {"value": [{"id": "run-1"}], "nextLink": None})


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


def _body(model_name: str | None = None) -> dict[str, str]:
    model = MODEL if model_name is None else f"azureml://registries/azureml-meta/models/{model_name}"
    return {"workspaceId": WORKSPACE, "modelId": model}


def _errors_against(schema: dict[str, Any], instance: object) -> list[str]:
    document = openapi_document()
    validator = Draft202012Validator({**schema, "components": document["components"]})
    return [error.message for error in validator.iter_errors(instance)]


def test_every_json_response_has_examples_that_match_its_schema():
    for (path, method), operation in _operations().items():
        for status, response in operation["responses"].items():
            for media_type, content in response.get("content", {}).items():
                if media_type != "application/json" or content["schema"] == {"type": "object"}:
                    continue
                examples = content.get("examples") or {}
                if "$ref" in json.dumps(content["schema"]):
                    assert examples, f"{method} {path} {status} has no example"
                for name, example in examples.items():
                    errors = _errors_against(content["schema"], example["value"])
                    assert errors == [], f"{method} {path} {status} example {name}: {errors}"


def test_every_problem_response_has_one_valid_example_per_problem_type():
    shown = set()
    for (path, method), operation in _operations().items():
        for status, response in operation["responses"].items():
            content = response.get("content", {}).get("application/problem+json")
            if content is None:
                continue
            named = {part.split(":")[0] for part in response["description"].split("; ")} & set(CATALOG)
            assert set(content["examples"]) == named, f"{method} {path} {status}"
            for slug, example in content["examples"].items():
                assert example["value"]["type"] == CATALOG[slug].uri
                assert example["value"]["status"] == int(status)
                assert _errors("Problem", example["value"]) == []
            shown |= named
    assert shown == set(CATALOG)


def test_the_examples_are_real_bodies_of_their_schemas():
    examples = contract_examples()

    for schema, key in [
        ("RunRecord", "runAccepted"),
        ("RunRecord", "runSucceeded"),
        ("RunRecord", "runApproved"),
        ("Deployment", "deployment"),
        ("RunPage", "runPage"),
        ("DeploymentPage", "deploymentPage"),
        ("KeyRotation", "keyRotation"),
        ("WhatIf", "whatIf"),
        ("FindingPage", "findingPage"),
        ("ScanReport", "scanReport"),
        ("VisibleScanReport", "visibleScanReport"),
    ]:
        assert _errors(schema, examples[key]) == [], key
    ScanReport.model_validate(examples["scanReport"])
    VisibleScanReport.model_validate(examples["visibleScanReport"])


def test_hygiene_findings_and_reports_of_a_real_scan_match_their_schemas(monkeypatch):
    world = HygieneWorld()
    world.ml.add(WS_A, endpoint(WS_A, "llama", subscription="gone-sub"), endpoint(WS_A, "handmade", managed=False))
    world.ml.add(WS_B, endpoint(WS_B, "cohere", subscription="gone-sub"))
    monkeypatch.setattr(hygiene_composition, "finding_store", lambda: world.store)
    readers = Readers(FakeAuthorization("broker"), world)
    monkeypatch.setattr(deployment_composition, "deployment_service", lambda: readers)
    world.scan(workspaces=(WS_A, WS_B))

    _, page = get_hygiene(hygiene_handlers.hygiene_findings, "findings", pageSize="2")
    _, whole = get_hygiene(hygiene_handlers.hygiene_report, "report", as_=HYGIENE_AUDITOR)
    _, seen = get_hygiene(hygiene_handlers.hygiene_report, "report", as_=NOBODY)

    assert page["nextLink"] is not None
    assert _errors("FindingPage", page) == []
    assert (whole["scope"], seen["scope"]) == ("all", "visible")
    assert _errors("ScanReport", whole) == []
    assert _errors("VisibleScanReport", seen) == []
    assert _errors("ScanReport", seen), "the two forms are told apart"
    assert _errors("FindingPage", {"value": [{**page["value"][0], "outbox": []}], "nextLink": None})

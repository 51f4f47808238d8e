import pytest
from pydantic import ValidationError

from shared.azure_ids import WorkspaceId
from shared.model_ids import ModelId
from shared.requests import MAX_TAGS, DeploymentRequest, QueueDeploymentRequest, validation_problems

SUB = "0b1f6471-1bf0-4dda-aec3-111122223333"
WS = f"/subscriptions/{SUB}/resourceGroups/rg-ai/providers/Microsoft.MachineLearningServices/workspaces/proj-a"
MODEL = "azureml://registries/azureml-deepseek/models/DeepSeek-R1"
REQUESTER = "aaaaaaaa-0000-0000-0000-000000000001"


def body(**fields):
    return {"workspaceId": WS, "modelId": MODEL, **fields}


def problems(model, data):
    with pytest.raises(ValidationError) as caught:
        model.from_wire(data)
    return validation_problems(caught.value)


def test_a_minimal_body_gets_the_defaults():
    request = DeploymentRequest.from_wire(body())

    assert request.workspace_id == WS
    assert request.model_id == MODEL
    assert request.endpoint_name is None
    assert request.content_safety == "Enabled"
    assert request.ticket is None
    assert request.tags is None
    assert request.allow_cross_region is False
    assert request.workspace == WorkspaceId.parse(WS)
    assert request.model == ModelId("azureml-deepseek", "DeepSeek-R1")


def test_explicit_nulls_mean_omitted():
    request = DeploymentRequest.from_wire(body(endpointName=None, ticket=None, tags=None))

    assert request == DeploymentRequest.from_wire(body())


def test_identifiers_are_normalised():
    request = DeploymentRequest.from_wire(
        body(
            workspaceId=WS.replace("resourceGroups", "resourcegroups").replace(SUB, SUB.upper()),
            modelId=f"{MODEL}/versions/2",
            ticket="  CHG-1 ",
        )
    )

    assert request.workspace_id == WS
    assert request.model_id == MODEL
    assert request.ticket == "CHG-1"


def test_a_full_body_round_trips_through_the_wire_form():
    data = body(
        endpointName="deepseek-ep",
        contentSafety="Disabled",
        ticket="CHG-1",
        tags={"costCenter": "42", "owner": ""},
        allowCrossRegion=True,
    )

    request = DeploymentRequest.from_wire(data)

    assert request.to_wire() == data
    assert (
        DeploymentRequest(
            workspace_id=WS,
            model_id=MODEL,
            endpoint_name="deepseek-ep",
            content_safety="Disabled",
            ticket="CHG-1",
            tags={"costCenter": "42", "owner": ""},
            allow_cross_region=True,
        )
        == request
    )


def test_snake_case_on_the_wire_is_refused_with_a_hint():
    assert problems(DeploymentRequest, body(endpoint_name="x")) == [
        {"field": "endpoint_name", "message": "This field is not recognised; did you mean 'endpointName'?"}
    ]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {},
            [
                {"field": "workspaceId", "message": "This field is required."},
                {"field": "modelId", "message": "This field is required."},
            ],
        ),
        ([], [{"field": "(body)", "message": "The body must be a JSON object."}]),
        (body(colour="red"), [{"field": "colour", "message": "This field is not recognised."}]),
        (
            body(workspaceId="proj-a"),
            [
                {
                    "field": "workspaceId",
                    "message": "'proj-a' is not a workspace id; expected "
                    "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroup}/providers/"
                    "Microsoft.MachineLearningServices/workspaces/{workspaceName}.",
                }
            ],
        ),
        (
            body(modelId="DeepSeek-R1"),
            [
                {
                    "field": "modelId",
                    "message": "The model id 'DeepSeek-R1' does not start "
                    "with 'azureml://'; expected azureml://registries/<registry>/models/<name>[/versions/<version>].",
                }
            ],
        ),
        (
            body(endpointName="1ep"),
            [{"field": "endpointName", "message": "The endpoint name '1ep' must start with a letter."}],
        ),
        (
            body(contentSafety="enabled"),
            [{"field": "contentSafety", "message": "Input should be 'Enabled' or 'Disabled'"}],
        ),
        (body(ticket="   "), [{"field": "ticket", "message": "The ticket is blank; omit it or give a reference."}]),
        (
            body(ticket="t" * 257),
            [{"field": "ticket", "message": "The ticket is 257 characters long; the limit is 256."}],
        ),
        (
            body(allowCrossRegion="maybe"),
            [{"field": "allowCrossRegion", "message": "Input should be a valid boolean, unable to interpret input"}],
        ),
        (body(tags={"n": 1}), [{"field": "tags.n", "message": "Input should be a valid string"}]),
        (
            body(tags={f"t{i}": "v" for i in range(MAX_TAGS + 1)}),
            [{"field": "tags", "message": "16 tags given; the limit is 15."}],
        ),
        (body(tags={" ": "v"}), [{"field": "tags", "message": "A tag name is blank."}]),
        (
            body(tags={"n" * 513: "v"}),
            [{"field": "tags", "message": f"Tag name '{'n' * 40}...' is 513 characters long; the limit is 512."}],
        ),
        (
            body(tags={"a/b%": "v"}),
            [{"field": "tags", "message": "Tag name 'a/b%' contains '%', '/', which Azure does not allow."}],
        ),
        (
            body(tags={"Azure-env": "v"}),
            [
                {
                    "field": "tags",
                    "message": "Tag name 'Azure-env' starts with a prefix Azure reserves (microsoft, azure, windows).",
                }
            ],
        ),
        (
            body(tags={"env": "v" * 257}),
            [{"field": "tags", "message": "The value of tag 'env' is 257 characters long; the limit is 256."}],
        ),
    ],
)
def test_each_invalid_field_is_named_with_a_precise_message(data, expected):
    assert problems(DeploymentRequest, data) == expected


def test_limits_themselves_are_accepted():
    request = DeploymentRequest.from_wire(
        body(ticket="t" * 256, tags={**{f"t{i}": "v" for i in range(MAX_TAGS - 1)}, "n" * 512: "v" * 256})
    )

    assert len(request.tags) == MAX_TAGS


def test_several_problems_are_reported_together():
    fields = [problem["field"] for problem in problems(DeploymentRequest, {"modelId": "x", "endpointName": "_"})]

    assert fields == ["workspaceId", "modelId", "endpointName"]


def test_python_callers_see_snake_case_locations():
    with pytest.raises(ValidationError) as caught:
        DeploymentRequest(workspace_id=WS, model_id="nope")

    assert validation_problems(caught.value)[0]["field"] == "model_id"


def test_a_queue_message_needs_requester_and_ticket():
    assert problems(QueueDeploymentRequest, body()) == [
        {"field": "ticket", "message": "This field is required."},
        {"field": "requestedBy", "message": "This field is required."},
    ]


def test_a_queue_message_defaults_to_deploy_and_normalises_the_requester():
    message = QueueDeploymentRequest.from_wire(body(requestedBy=REQUESTER.upper(), ticket="INC-7"))

    assert message.type == "deploy"
    assert message.requested_by == REQUESTER
    assert message.deployment_request() == DeploymentRequest.from_wire(body(ticket="INC-7"))


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"requestedBy": "bob@contoso.com"},
            {
                "field": "requestedBy",
                "message": "requestedBy 'bob@contoso.com' is not an object id (a GUID such as 00000000-0000-...).",
            },
        ),
        (
            {"requestedBy": "{" + REQUESTER + "}"},
            {
                "field": "requestedBy",
                "message": "requestedBy '{" + REQUESTER + "}' is not an object id (a GUID such as 00000000-0000-...).",
            },
        ),
        ({"ticket": ""}, {"field": "ticket", "message": "The ticket is blank; omit it or give a reference."}),
        ({"ticket": None}, {"field": "ticket", "message": "Input should be a valid string"}),
        ({"type": "undeploy"}, {"field": "type", "message": "Input should be 'deploy' or 'delete'"}),
    ],
)
def test_queue_specific_fields_are_validated(fields, expected):
    data = body(requestedBy=REQUESTER, ticket="INC-7") | fields

    assert problems(QueueDeploymentRequest, data) == [expected]


def test_a_delete_message_is_accepted():
    message = QueueDeploymentRequest.from_wire(body(requestedBy=REQUESTER, ticket="INC-7", type="delete"))

    assert message.type == "delete"


def test_the_openapi_schema_uses_wire_names_and_carries_the_endpoint_pattern():
    schema = QueueDeploymentRequest.model_json_schema()

    assert set(schema["required"]) == {"workspaceId", "modelId", "requestedBy", "ticket"}
    assert schema["additionalProperties"] is False
    assert schema["properties"]["endpointName"]["pattern"] == "^[a-zA-Z][a-zA-Z0-9-]{0,51}$"
    assert schema["properties"]["contentSafety"]["enum"] == ["Enabled", "Disabled"]


def test_requests_are_immutable():
    request = DeploymentRequest.from_wire(body())

    with pytest.raises(ValidationError):
        request.model_id = "azureml://registries/r/models/other"

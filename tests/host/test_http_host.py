"""HTTP rules, through the real host subprocess running tests/host/apps/http_app."""

import json
import uuid

import pytest

from .helpers import APPS, b64, call, copy_app, message_count, open_queue, receive_all, running_host

MASTER_KEY = "test-master-key"
FUNCTION_KEY = "test-function-key"


@pytest.fixture(scope="module")
def host(azurite, tmp_path_factory):
    env = {
        "AzureWebJobsStorage": azurite.connection_string,
        "OVERRIDDEN": "from-environment",
        "DEVSTACK_HOST_MASTER_KEY": MASTER_KEY,
        "DEVSTACK_HOST_FUNCTION_KEY": FUNCTION_KEY,
    }
    with running_host(APPS / "http_app", env=env, log_dir=tmp_path_factory.mktemp("http-host")) as running:
        yield running


@pytest.fixture(scope="module")
def variant_host(azurite, tmp_path_factory):
    """The same app with an empty routePrefix, a one-second functionTimeout, a local.settings.json next to the
    sample, and --no-auth."""
    app_dir = copy_app(
        "http_app",
        tmp_path_factory.mktemp("variant"),
        host_json={"version": "2.0", "functionTimeout": "00:00:01", "extensions": {"http": {"routePrefix": ""}}},
    )
    (app_dir / "local.settings.json").write_text(
        json.dumps({"IsEncrypted": False, "Values": {"GREETING": "from-local-settings", "ORDERS_QUEUE": "unused"}})
    )
    env = {"AzureWebJobsStorage": azurite.connection_string}
    with running_host(app_dir, env=env, log_dir=tmp_path_factory.mktemp("variant-host"), auth=False) as running:
        yield running


def test_routes_live_under_the_route_prefix_from_host_json(host):
    assert call(f"{host.url}/v1/items/7").json() == {"matched": "int", "id": "7"}
    assert call(f"{host.url}/api/items/7").status == 404


def test_an_empty_route_prefix_serves_routes_at_the_root(variant_host):
    assert call(f"{variant_host.url}/items/7").json() == {"matched": "int", "id": "7"}
    assert call(f"{variant_host.url}/v1/items/7").status == 404


def test_constraints_pick_the_route(host):
    guid = str(uuid.uuid4())

    assert call(f"{host.url}/v1/items/{guid}").json() == {"matched": "guid", "id": guid}
    assert call(f"{host.url}/v1/items/widget").json() == {"matched": "alpha", "name": "widget"}
    assert call(f"{host.url}/v1/items/widget-2").status == 404


def test_methods_405_when_the_route_matches_and_404_when_nothing_does(host):
    created = call(f"{host.url}/v1/items", "POST", body=b'{"name": "widget"}')
    wrong_method = call(f"{host.url}/v1/items", "DELETE")

    assert (created.status, created.json()) == (201, {"created": {"name": "widget"}})
    assert wrong_method.status == 405
    assert wrong_method.headers["Allow"] == "POST"
    assert call(f"{host.url}/v1/nothing-here").status == 404


def test_optional_and_catch_all_route_parameters(host):
    assert call(f"{host.url}/v1/files/reports/2026/q1.pdf").json() == {"path": "reports/2026/q1.pdf"}
    assert call(f"{host.url}/v1/greet").body == b"hello nobody"
    assert call(f"{host.url}/v1/greet/ada").body == b"hello ada"


def test_a_function_without_a_route_is_served_at_its_function_name(host):
    assert call(f"{host.url}/v1/routeless").json() == {"function": "routeless"}
    assert call(f"{host.url}/v1/renamed").json() == {"function": "renamed"}
    assert call(f"{host.url}/v1/python_name_differs").status == 404


def test_the_request_and_response_are_converted_as_the_host_does(host):
    reply = call(f"{host.url}/v1/echo?a=1&a=2&b=x", "POST", headers={"X-Custom": "c"}, body=b"payload")

    assert reply.status == 299
    assert reply.headers["X-Echo"] == "yes"
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.json() == {
        "method": "POST",
        "url": f"{host.url}/v1/echo?a=1&a=2&b=x",
        "params": {"a": "1,2", "b": "x"},
        "x_custom": "c",
        "body": "payload",
    }


def test_a_str_result_is_a_plain_text_200(host):
    reply = call(f"{host.url}/v1/greet/ada")

    assert (reply.status, reply.headers["Content-Type"]) == (200, "text/plain; charset=utf-8")


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/v1/secure/function", {}, 401),
        ("/v1/secure/function", {"x-functions-key": "wrong"}, 401),
        ("/v1/secure/function", {"x-functions-key": FUNCTION_KEY}, 200),
        (f"/v1/secure/function?code={FUNCTION_KEY}", {}, 200),
        ("/v1/secure/function", {"x-functions-key": MASTER_KEY}, 200),
        ("/v1/secure/admin", {"x-functions-key": FUNCTION_KEY}, 401),
        (f"/v1/secure/admin?code={FUNCTION_KEY}", {}, 401),
        ("/v1/secure/admin", {"x-functions-key": MASTER_KEY}, 200),
        (f"/v1/secure/admin?code={MASTER_KEY}", {}, 200),
        ("/admin/host/status", {}, 401),
        ("/admin/host/status", {"x-functions-key": FUNCTION_KEY}, 401),
        ("/admin/host/status", {"x-functions-key": MASTER_KEY}, 200),
    ],
)
def test_auth_levels_and_key_locations(host, path, headers, status):
    assert call(f"{host.url}{path}", headers=headers).status == status


def test_no_auth_turns_key_enforcement_off(variant_host):
    assert call(f"{variant_host.url}/secure/admin").body == b"admin level ok"
    assert call(f"{variant_host.url}/admin/host/status").json()["state"] == "Running"


def test_admin_invoke_answers_404_for_unknown_and_400_for_http_functions(host):
    key = {"x-functions-key": MASTER_KEY}

    assert call(f"{host.url}/admin/functions/nope", "POST", headers=key, body=b'{"input": ""}').status == 404
    assert call(f"{host.url}/admin/functions/echo", "POST", headers=key, body=b'{"input": ""}').status == 400
    assert call(f"{host.url}/admin/functions/nope", "POST", body=b'{"input": ""}').status == 401


def test_sync_functions_run_in_the_pool_and_async_ones_on_the_loop_with_a_context(host):
    sync = call(f"{host.url}/v1/context/sync").json()
    asynchronous = call(f"{host.url}/v1/context/async").json()

    assert (sync["function_name"], sync["on_loop_thread"]) == ("sync_with_context", False)
    assert (asynchronous["function_name"], asynchronous["on_loop_thread"]) == ("async_with_context", True)
    logged_ids = {record["invocationId"] for record in host.invocations()}
    assert {sync["invocation_id"], asynchronous["invocation_id"]} <= logged_ids


def test_one_structured_log_line_per_invocation(host):
    def is_routeless(record):
        return record["function"] == "routeless"

    seen = len([record for record in host.invocations() if is_routeless(record)])
    call(f"{host.url}/v1/routeless")

    record = host.wait_for_invocations(is_routeless, count=seen + 1)[-1]
    assert set(record) == {
        "timestamp", "event", "function", "trigger", "invocationId", "durationMs", "outcome", "method"
    }  # fmt: skip
    assert (record["trigger"], record["outcome"], record["method"]) == ("httpTrigger", "Succeeded", "GET")
    assert isinstance(record["durationMs"], float)


def test_a_failing_function_is_a_bare_500_logged_with_its_error_but_not_its_body(host):
    reply = call(f"{host.url}/v1/fail", "POST", body=b"secret-body-text")

    assert (reply.status, reply.body) == (500, b"")
    [record] = host.wait_for_invocations(lambda record: record["function"] == "fail")
    assert record["outcome"] == "Failed"
    assert record["error"] == {"type": "ValueError", "message": "deliberate failure"}
    assert "secret-body-text" not in host.log_text()


def test_an_invocation_past_function_timeout_fails_and_a_quick_one_does_not(variant_host):
    late = call(f"{variant_host.url}/slow?seconds=3")
    quick = call(f"{variant_host.url}/slow?seconds=0")

    assert (late.status, quick.status) == (500, 200)
    [record] = variant_host.wait_for_invocations(
        lambda record: record["function"] == "slow" and record["outcome"] == "Failed"
    )
    assert record["error"]["type"] == "FunctionTimeoutError"
    assert "Timeout value of 00:00:01 exceeded by function 'Functions.slow'" in record["error"]["message"]


def test_a_result_the_worker_cannot_convert_fails_the_invocation(host):
    assert call(f"{host.url}/v1/wrong-type").status == 500
    [record] = host.wait_for_invocations(lambda record: record["function"] == "wrong_type")
    assert record["error"]["type"] == "TypeError"


def test_queue_output_is_written_only_when_the_function_succeeds(host, azurite):
    orders = open_queue(azurite.connection_string, "http-orders")
    orders.clear_messages()

    failed = call(f"{host.url}/v1/orders?fail=1", "POST", body=b"order-1")
    accepted = call(f"{host.url}/v1/orders", "POST", body=b"order-2")

    assert (failed.status, accepted.status) == (500, 202)
    # The failed call finished before the accepted one began, so its message would already be there.
    assert receive_all(orders, 1) == [b64("order-2")]
    assert message_count(orders) == 0


def test_environment_settings_win_over_the_settings_file(host):
    assert call(f"{host.url}/v1/settings").json() == {"GREETING": "from-sample-file", "OVERRIDDEN": "from-environment"}


def test_local_settings_json_is_preferred_to_the_sample(variant_host):
    assert call(f"{variant_host.url}/settings").json()["GREETING"] == "from-local-settings"

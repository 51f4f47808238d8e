"""HTTP sample app for the host tests: routes, constraints, methods, auth levels, results, context, outputs."""

import asyncio
import json
import os
import threading
import time

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


def _json(body: object, status_code: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status_code, mimetype="application/json")


@app.route(route="items/{id:int}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def item_by_number(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"matched": "int", "id": req.route_params["id"]})


@app.route(route="items/{id:guid}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def item_by_guid(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"matched": "guid", "id": req.route_params["id"]})


@app.route(route="items/{name:alpha}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def item_by_name(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"matched": "alpha", "name": req.route_params["name"]})


@app.route(route="items", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def create_item(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"created": req.get_json()}, status_code=201)


@app.route(route="files/{*path}", auth_level=func.AuthLevel.ANONYMOUS)
def file_by_path(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"path": req.route_params.get("path")})


@app.route(route="greet/{name?}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def greet(req: func.HttpRequest) -> str:
    return f"hello {req.route_params.get('name', 'nobody')}"


@app.route(methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def routeless(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"function": "routeless"})


@app.function_name("renamed")
@app.route(methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def python_name_differs(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"function": "renamed"})


@app.route(route="echo", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
def echo(req: func.HttpRequest) -> func.HttpResponse:
    body = {
        "method": req.method,
        "url": req.url,
        "params": dict(req.params),
        "x_custom": req.headers.get("x-custom"),
        "body": req.get_body().decode("utf-8"),
    }
    return func.HttpResponse(json.dumps(body), status_code=299, mimetype="application/json", headers={"X-Echo": "yes"})


@app.route(route="secure/function", methods=["GET"])
def function_level(req: func.HttpRequest) -> str:
    return "function level ok"


@app.route(route="secure/admin", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
def admin_level(req: func.HttpRequest) -> str:
    return "admin level ok"


@app.route(route="settings", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def settings(req: func.HttpRequest) -> func.HttpResponse:
    return _json({name: os.environ.get(name) for name in ("GREETING", "OVERRIDDEN")})


@app.route(route="context/sync", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def sync_with_context(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return _json(
        {
            "invocation_id": context.invocation_id,
            "function_name": context.function_name,
            "on_loop_thread": threading.current_thread() is threading.main_thread(),
        }
    )


@app.route(route="context/async", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def async_with_context(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    await asyncio.sleep(0)
    return _json(
        {
            "invocation_id": context.invocation_id,
            "function_name": context.function_name,
            "on_loop_thread": threading.current_thread() is threading.main_thread(),
        }
    )


@app.route(route="fail", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def fail(req: func.HttpRequest) -> func.HttpResponse:
    raise ValueError("deliberate failure")


@app.route(route="wrong-type", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def wrong_type(req: func.HttpRequest) -> func.HttpResponse:
    return {"not": "a response"}  # type: ignore[return-value]


@app.route(route="orders", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@app.queue_output(arg_name="order", queue_name="%ORDERS_QUEUE%", connection="AzureWebJobsStorage")
def place_order(req: func.HttpRequest, order: func.Out[str]) -> func.HttpResponse:
    order.set(req.get_body().decode("utf-8"))
    if req.params.get("fail"):
        raise RuntimeError("failed after setting the output")
    return func.HttpResponse(status_code=202)


@app.route(route="slow", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def slow(req: func.HttpRequest) -> func.HttpResponse:
    time.sleep(float(req.params.get("seconds", "0")))
    return _json({"slept": req.params.get("seconds", "0")})

"""Easy Auth sample app for the host tests: echoes what reaches it of the caller's identity."""

import json
import os

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


def _seen(req: func.HttpRequest) -> func.HttpResponse:
    headers = {name.lower(): value for name, value in req.headers.items()}
    body = {
        "principal": {name: value for name, value in headers.items() if name.startswith("x-ms-client-principal")},
        "tokens": sorted(name for name in headers if name.startswith("x-ms-token-")),
        "authorization": headers.get("authorization"),
        "websiteAuthEnabled": os.environ.get("WEBSITE_AUTH_ENABLED"),
    }
    return func.HttpResponse(json.dumps(body), mimetype="application/json")


@app.route(route="whoami", methods=["GET", "POST"])
def whoami(req: func.HttpRequest) -> func.HttpResponse:
    return _seen(req)


@app.route(route="open", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def open_route(req: func.HttpRequest) -> func.HttpResponse:
    return _seen(req)


@app.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    return _seen(req)

import types

import azure.functions as func
import pytest

from devstack.host.indexing import (
    FunctionIndexError,
    HttpTriggerSpec,
    QueueTriggerSpec,
    TimerTriggerSpec,
    find_function_register,
    index_functions,
)
from devstack.host.keys import AuthLevel

STORAGE = {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}


def _index(app: func.FunctionApp, environ: dict[str, str] | None = None):
    return {spec.name: spec for spec in index_functions(app, {**STORAGE, **(environ or {})})}


def test_http_bindings_are_read_back_with_the_hosts_defaults():
    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

    @app.route(methods=["get", "POST"])
    def no_route(req: func.HttpRequest) -> str:
        return ""

    @app.function_name("renamed")
    @app.route(route="things/{id}", auth_level=func.AuthLevel.ADMIN)
    def python_name(req: func.HttpRequest) -> str:
        return ""

    specs = _index(app)

    assert specs["no_route"].trigger == HttpTriggerSpec("no_route", frozenset({"GET", "POST"}), AuthLevel.FUNCTION)
    assert specs["renamed"].trigger == HttpTriggerSpec("things/{id}", None, AuthLevel.ADMIN)
    assert specs["renamed"].http_output == "$return"


def test_queue_and_timer_bindings_resolve_app_settings():
    app = func.FunctionApp()

    @app.queue_trigger(arg_name="msg", queue_name="%PREFIX%-work", connection="")
    @app.queue_output(arg_name="out", queue_name="%PREFIX%-done", connection="OTHER")
    def worker(msg: func.QueueMessage, out: func.Out[str]) -> None: ...

    @app.timer_trigger(arg_name="timer", schedule="%SCHEDULE%", run_on_startup=True)
    async def ticker(timer: func.TimerRequest) -> None: ...

    specs = _index(app, {"PREFIX": "t1", "SCHEDULE": "*/5 * * * * *", "OTHER": "UseDevelopmentStorage=true"})

    assert specs["worker"].trigger == QueueTriggerSpec("t1-work", "AzureWebJobsStorage")
    [output] = specs["worker"].queue_outputs
    assert (output.name, output.queue_name, output.connection) == ("out", "t1-done", "OTHER")
    timer = specs["ticker"].trigger
    assert isinstance(timer, TimerTriggerSpec)
    assert (timer.schedule.expression, timer.run_on_startup) == ("*/5 * * * * *", True)
    assert specs["ticker"].is_async
    assert not specs["worker"].is_async


def test_context_is_found_by_name_or_by_annotation():
    app = func.FunctionApp()

    @app.route(route="a")
    def by_name(req: func.HttpRequest, context) -> str:
        return ""

    @app.route(route="b")
    def by_annotation(req: func.HttpRequest, ctx: func.Context) -> str:
        return ""

    specs = _index(app)

    assert specs["by_name"].context_parameter == "context"
    assert specs["by_annotation"].context_parameter == "ctx"


def _app_with(register):
    app = func.FunctionApp()
    register(app)
    return app


def _unbound_parameter(app):
    @app.route(route="x")
    def handler(req: func.HttpRequest, extra: str) -> str:
        return ""


def _output_without_out_annotation(app):
    @app.route(route="x")
    @app.queue_output(arg_name="out", queue_name="q", connection="AzureWebJobsStorage")
    def handler(req: func.HttpRequest, out: str) -> str:
        return ""


def _binding_without_parameter(app):
    @app.route(route="x")
    @app.queue_output(arg_name="out", queue_name="q", connection="AzureWebJobsStorage")
    def handler(req: func.HttpRequest) -> str:
        return ""


def _unserved_trigger(app):
    @app.blob_trigger(arg_name="blob", path="c/{name}", connection="AzureWebJobsStorage")
    def handler(blob: func.InputStream) -> None: ...


def _missing_connection_setting(app):
    @app.queue_trigger(arg_name="msg", queue_name="q", connection="NOT_DEFINED")
    def handler(msg: func.QueueMessage) -> None: ...


def _unresolved_queue_name(app):
    @app.queue_trigger(arg_name="msg", queue_name="%NOT_DEFINED%", connection="AzureWebJobsStorage")
    def handler(msg: func.QueueMessage) -> None: ...


def _five_field_schedule(app):
    @app.timer_trigger(arg_name="timer", schedule="*/5 * * * *")
    def handler(timer: func.TimerRequest) -> None: ...


def _bad_route(app):
    @app.route(route="items/{id:nonsense}")
    def handler(req: func.HttpRequest) -> str:
        return ""


@pytest.mark.parametrize(
    ("register", "reason"),
    [
        (_unbound_parameter, "parameter 'extra' has no binding"),
        (_output_without_out_annotation, "must be annotated azure.functions.Out"),
        (_binding_without_parameter, "have no parameter"),
        (_unserved_trigger, "blobTrigger"),
        (_missing_connection_setting, "NOT_DEFINED"),
        (_unresolved_queue_name, "does not resolve"),
        (_five_field_schedule, "needs six"),
        (_bad_route, "nonsense"),
    ],
)
def test_apps_the_host_would_refuse(register, reason):
    with pytest.raises(FunctionIndexError, match=reason):
        _index(_app_with(register))


def test_a_module_needs_exactly_one_function_app():
    module = types.ModuleType("function_app")
    with pytest.raises(FunctionIndexError):
        find_function_register(module)
    module.app = func.FunctionApp()
    module.alias = module.app
    assert find_function_register(module) is module.app
    module.other = func.FunctionApp()
    with pytest.raises(FunctionIndexError):
        find_function_register(module)

"""Index a function app as the Python worker does: import function_app and read each Function's bindings back."""

from __future__ import annotations

import importlib
import inspect
import sys
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import azure.functions as func

from devstack.host.connections import resolve_storage_connection
from devstack.host.keys import AuthLevel
from devstack.host.ncrontab import NcrontabSchedule, ScheduleError, parse_ncrontab
from devstack.host.routing import RouteTemplate, RouteTemplateError
from devstack.host.settings import SettingsError, resolve_app_settings

HTTP_TRIGGER = "httpTrigger"
QUEUE_TRIGGER = "queueTrigger"
TIMER_TRIGGER = "timerTrigger"
HTTP_OUTPUT = "http"
QUEUE_OUTPUT = "queue"
RETURN_BINDING = "$return"
DEFAULT_STORAGE_CONNECTION = "AzureWebJobsStorage"
SCRIPT_MODULE = "function_app"


class FunctionIndexError(ValueError):
    """The app would fail indexing in the real host, or uses a binding this host does not serve."""


@dataclass(frozen=True)
class HttpTriggerSpec:
    route: str
    methods: frozenset[str] | None
    auth_level: AuthLevel


@dataclass(frozen=True)
class QueueTriggerSpec:
    queue_name: str
    connection: str


@dataclass(frozen=True)
class TimerTriggerSpec:
    schedule: NcrontabSchedule
    run_on_startup: bool


@dataclass(frozen=True)
class QueueOutputSpec:
    name: str
    queue_name: str
    connection: str


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    trigger_type: str
    trigger_parameter: str
    trigger: HttpTriggerSpec | QueueTriggerSpec | TimerTriggerSpec
    user_function: Callable[..., Any]
    http_output: str | None
    queue_outputs: tuple[QueueOutputSpec, ...]
    context_parameter: str | None

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.user_function)


def import_function_app(app_dir: Path) -> func.FunctionRegister:
    sys.path.insert(0, str(app_dir))
    module = importlib.import_module(SCRIPT_MODULE)
    return find_function_register(module)


def find_function_register(module: ModuleType) -> func.FunctionRegister:
    apps = {id(value): value for value in vars(module).values() if isinstance(value, func.FunctionRegister)}
    if len(apps) != 1:
        raise FunctionIndexError(f"{module.__name__} must define exactly one FunctionApp, found {len(apps)}")
    return next(iter(apps.values()))


def index_functions(app: func.FunctionRegister, environ: Mapping[str, str]) -> list[FunctionSpec]:
    # get_functions() builds and registers names; a second call fails, so it is called exactly once.
    return [_index_function(function, environ) for function in app.get_functions()]


def _index_function(function: func.Function, environ: Mapping[str, str]) -> FunctionSpec:
    name = function.get_function_name()
    trigger = function.get_trigger()
    try:
        trigger_spec = _trigger_spec(trigger, environ)
        http_output, queue_outputs = _output_specs(name, function.get_bindings(), trigger, environ)
    except (SettingsError, ScheduleError, RouteTemplateError) as error:
        raise FunctionIndexError(f"function {name}: {error}") from error
    user_function = function.get_user_function()
    output_names = [output.name for output in queue_outputs] + [http_output or RETURN_BINDING]
    context_parameter = _check_parameters(name, user_function, trigger.name, output_names)
    return FunctionSpec(
        name=name,
        trigger_type=trigger.type,
        trigger_parameter=trigger.name,
        trigger=trigger_spec,
        user_function=user_function,
        http_output=http_output,
        queue_outputs=tuple(queue_outputs),
        context_parameter=context_parameter,
    )


def _trigger_spec(trigger: Any, environ: Mapping[str, str]) -> HttpTriggerSpec | QueueTriggerSpec | TimerTriggerSpec:
    if trigger.type == HTTP_TRIGGER:
        methods = frozenset(_enum_value(method).upper() for method in trigger.methods) if trigger.methods else None
        level = AuthLevel(_enum_value(trigger.auth_level)) if trigger.auth_level else AuthLevel.FUNCTION
        RouteTemplate(trigger.route)  # rejects a malformed template at start-up, as the host does
        return HttpTriggerSpec(route=trigger.route, methods=methods, auth_level=level)
    if trigger.type == QUEUE_TRIGGER:
        connection = _connection(trigger, environ)
        return QueueTriggerSpec(resolve_app_settings(trigger.queue_name, environ), connection)
    if trigger.type == TIMER_TRIGGER:
        schedule = parse_ncrontab(resolve_app_settings(trigger.schedule, environ))
        return TimerTriggerSpec(schedule, bool(trigger.run_on_startup))
    raise FunctionIndexError(f"trigger type {trigger.type!r} is not served by the local host")


def _output_specs(
    function_name: str, bindings: list[Any], trigger: Any, environ: Mapping[str, str]
) -> tuple[str | None, list[QueueOutputSpec]]:
    http_output, queue_outputs = None, []
    for binding in bindings:
        if binding is trigger:
            continue
        if binding.type == HTTP_OUTPUT:
            http_output = binding.name
        elif binding.type == QUEUE_OUTPUT:
            queue_name = resolve_app_settings(binding.queue_name, environ)
            queue_outputs.append(QueueOutputSpec(binding.name, queue_name, _connection(binding, environ)))
        else:
            raise FunctionIndexError(
                f"function {function_name}: binding type {binding.type!r} is not served by the local host"
            )
    return http_output, queue_outputs


def _connection(binding: Any, environ: Mapping[str, str]) -> str:
    connection = binding.connection or DEFAULT_STORAGE_CONNECTION
    # A connection string or an identity-based connection; a ConnectionSettingError (a SettingsError) otherwise.
    resolve_storage_connection(connection, environ)
    return connection


def _check_parameters(
    function_name: str, user_function: Callable[..., Any], trigger_name: str, output_names: list[str]
) -> str | None:
    """Match Python parameters to bindings as the worker does; return the context parameter's name, if any."""
    parameters = inspect.signature(user_function).parameters
    hints = _type_hints(user_function)
    bound = {trigger_name, *(name for name in output_names if name != RETURN_BINDING)}
    context_parameter = None
    for parameter in parameters:
        hint = hints.get(parameter)
        if parameter in bound:
            continue
        if parameter == "context" or (inspect.isclass(hint) and issubclass(hint, func.Context)):
            context_parameter = parameter
            continue
        raise FunctionIndexError(f"function {function_name}: parameter {parameter!r} has no binding")
    unbound = sorted(bound - set(parameters))
    if unbound:
        raise FunctionIndexError(f"function {function_name}: bindings {unbound} have no parameter of that name")
    for name in bound - {trigger_name}:
        hint = hints.get(name)
        if hint is not func.Out and typing.get_origin(hint) is not func.Out:
            raise FunctionIndexError(
                f"function {function_name}: output binding {name!r} must be annotated azure.functions.Out[...]"
            )
    return context_parameter


def _type_hints(user_function: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(user_function)
    except (NameError, TypeError):
        # Unresolvable string annotations: fall back to what inspect sees, as the worker does.
        return {name: parameter.annotation for name, parameter in inspect.signature(user_function).parameters.items()}


def _enum_value(value: Any) -> str:
    return str(getattr(value, "value", value))

"""The internal `deployment-work` queue: one provisioning step per message, never waiting on Azure in-process.

Exceptions propagate on purpose: the host retries the step and poisons the message after maxDequeueCount tries.
"""

from __future__ import annotations

import azure.functions as func

from handlers.tracing import invocation_trace
from shared.telemetry import continued

blueprint = func.Blueprint()


@blueprint.function_name("advance_deployment")
@blueprint.queue_trigger(arg_name="msg", queue_name="%DEPLOYMENT_WORK_QUEUE%", connection="AzureWebJobsStorage")
def advance_deployment(msg: func.QueueMessage, context: func.Context) -> None:
    from shared.deployments.composition import deployment_service

    # The step continues the trace its message carries; a message without one (the watchdog's) stays in this
    # invocation's.
    with continued(invocation_trace(context)):
        deployment_service().advance(msg.get_body().decode("utf-8"))

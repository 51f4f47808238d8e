"""The internal `deployment-work` queue: one provisioning step per message, never waiting on Azure in-process.

Exceptions propagate on purpose: the host retries the step and poisons the message after maxDequeueCount tries.
"""

from __future__ import annotations

import azure.functions as func

blueprint = func.Blueprint()


@blueprint.function_name("advance_deployment")
@blueprint.queue_trigger(arg_name="msg", queue_name="%DEPLOYMENT_WORK_QUEUE%", connection="AzureWebJobsStorage")
def advance_deployment(msg: func.QueueMessage) -> None:
    from shared.deployments.composition import deployment_service

    deployment_service().advance(msg.get_body().decode("utf-8"))

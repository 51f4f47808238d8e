"""The `deployment-requests` queue: ticketing systems' deployment requests, answered by events.

The body goes to the service as the bytes that arrived: it reads them within shared/wire.py's limits (64 KiB,
UTF-8, depth 32, ...) and poisons a malformed message itself, once, telling the ticket when one is readable. Nothing a
message holds makes this function raise. What does raise (storage unreachable, say) is transient: the host makes the
message visible again and, after maxDequeueCount tries, moves it to the poison queue itself.
"""

from __future__ import annotations

import logging

import azure.functions as func

from handlers.tracing import invocation_trace
from shared.telemetry import continued

LOGGER = logging.getLogger(__name__)

blueprint = func.Blueprint()


@blueprint.function_name("intake_deployment_request")
@blueprint.queue_trigger(arg_name="msg", queue_name="%DEPLOYMENT_REQUESTS_QUEUE%", connection="AzureWebJobsStorage")
def intake_deployment_request(msg: func.QueueMessage, context: func.Context) -> None:
    from shared.deployments.composition import deployment_service

    # The message's run is traced under this invocation: its steps and events continue the same trace.
    with continued(invocation_trace(context)):
        submission = deployment_service().intake_message(msg.get_body(), message_id=msg.id)
    if submission is None:
        LOGGER.info("Request message %s was malformed and has been poisoned.", msg.id)
    else:
        subject = submission.run.id if submission.run else submission.deployment.id if submission.deployment else "-"
        LOGGER.info("Request message %s answered (%s) by %s.", msg.id, submission.answer, subject)

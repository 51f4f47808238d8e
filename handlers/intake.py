"""The `deployment-requests` queue: ticketing systems' deployment requests, answered by events.

Malformed messages are the service's to poison (it also tells the ticket, when one is readable). Anything raised
here is treated as transient: the host makes the message visible again and poisons it after maxDequeueCount tries.
A body that is not UTF-8 takes that route too, so the poison queue keeps the bytes exactly as they arrived.
"""

from __future__ import annotations

import logging

import azure.functions as func

LOGGER = logging.getLogger(__name__)

blueprint = func.Blueprint()


@blueprint.function_name("intake_deployment_request")
@blueprint.queue_trigger(arg_name="msg", queue_name="%DEPLOYMENT_REQUESTS_QUEUE%", connection="AzureWebJobsStorage")
def intake_deployment_request(msg: func.QueueMessage) -> None:
    from shared.deployments.composition import deployment_service

    submission = deployment_service().intake_message(msg.get_body().decode("utf-8"), message_id=msg.id)
    if submission is None:
        LOGGER.info("Request message %s was malformed and has been poisoned.", msg.id)
    else:
        subject = submission.run.id if submission.run else submission.deployment.id if submission.deployment else "-"
        LOGGER.info("Request message %s answered (%s) by %s.", msg.id, submission.answer, subject)

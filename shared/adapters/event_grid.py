"""An Event Grid topic in the CloudEvents 1.0 schema (implements EventTopicPort), with the broker's identity.

The topic disables local auth (infra/modules/eventgrid.bicep): the client signs in with the broker's credential for
`https://eventgrid.azure.net`, and the identity holds EventGrid Data Sender on the topic. Events go as the CloudEvents
JSON documents the queue carries, so the topic's copy has the same id, source, type, subject, data and trace context.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError, HttpResponseError
from azure.eventgrid import EventGridPublisherClient

from shared.azure_errors import AzureCallError

# A topic that does not answer must not hold a workflow step for long: the queue copy of the event stands anyway.
# The client passes no options to its Event Grid Basic pipeline (whose default retries back off for minutes), so
# they go with each call; the SDK also offers them to each CloudEvent model, which warns that it ignores them.
RETRIES = 1
TIMEOUT_SECONDS = 10
logging.getLogger("azure.eventgrid._legacy._generated._serialization").setLevel(logging.ERROR)


class EventGridTopic:
    def __init__(self, endpoint: str, credential: TokenCredential) -> None:
        self._client = EventGridPublisherClient(endpoint, credential)

    def publish(self, events: Sequence[Mapping[str, Any]]) -> None:
        # CloudEvents JSON documents, extension attributes such as traceparent included, as one
        # application/cloudevents-batch+json request (the SDK writes `time` again, to the millisecond).
        try:
            self._client.send([dict(event) for event in events], retry_total=RETRIES, timeout=TIMEOUT_SECONDS)
        except HttpResponseError as error:
            code = error.error.code if error.error is not None and error.error.code else str(error.reason or "")
            message = error.error.message if error.error is not None and error.error.message else str(error.message)
            raise AzureCallError(error.status_code, code or "EventGridError", message) from error
        except AzureError as error:
            raise AzureCallError(None, type(error).__name__, str(error)) from error

import base64
import json
import uuid

import pytest
from azure.storage.queue import QueueClient

from shared.adapters.queues import JsonQueue
from shared.config import StorageSettings


@pytest.fixture
def queue_name() -> str:
    return f"q{uuid.uuid4().hex[:12]}"


@pytest.fixture
def sender(azurite, queue_name) -> JsonQueue:
    settings = StorageSettings(
        connection_string=azurite.connection_string, queue_service_uri=None, table_service_uri=None
    )
    return JsonQueue.open(settings, queue_name)


@pytest.fixture
def raw_reader(azurite, queue_name) -> QueueClient:
    return QueueClient.from_connection_string(azurite.connection_string, queue_name)


def test_message_is_base64_json_as_the_functions_host_expects(sender, raw_reader):
    sender.send({"runId": "r1", "step": "provision"})

    [message] = raw_reader.receive_messages()

    assert json.loads(base64.b64decode(message.content)) == {"runId": "r1", "step": "provision"}


def test_delayed_message_stays_invisible(sender, raw_reader):
    sender.send({"runId": "r1"}, delay_seconds=0.2)

    # Rounded up to whole seconds, so it cannot be received straight away.
    assert list(raw_reader.receive_messages()) == []
    assert raw_reader.peek_messages() == []


def test_opening_an_existing_queue_keeps_its_messages(azurite, queue_name, sender, raw_reader):
    sender.send({"first": True})
    settings = StorageSettings(
        connection_string=azurite.connection_string, queue_service_uri=None, table_service_uri=None
    )

    JsonQueue.open(settings, queue_name).send({"again": True})

    assert len(raw_reader.peek_messages(max_messages=5)) == 2

import uuid

import pytest

from shared.adapters.tables import DocumentTable
from shared.azure_errors import RecordChangedError, RecordExistsError
from shared.config import StorageSettings


@pytest.fixture
def table(azurite) -> DocumentTable:
    settings = StorageSettings(
        connection_string=azurite.connection_string, queue_service_uri=None, table_service_uri=None
    )
    return DocumentTable.open(settings, f"t{uuid.uuid4().hex[:12]}")


def test_created_document_reads_back_with_an_etag(table):
    table.create("run", "r1", {"id": "r1", "status": "Accepted"}, {"Status": "Accepted"})

    stored = table.get("run", "r1")

    assert stored.document == {"id": "r1", "status": "Accepted"}
    assert stored.etag


def test_second_create_of_the_same_key_is_refused(table):
    table.create("run", "r1", {"id": "r1"}, {})

    with pytest.raises(RecordExistsError):
        table.create("run", "r1", {"id": "r1", "other": True}, {})


def test_replace_with_a_stale_etag_is_refused(table):
    etag = table.create("run", "r1", {"v": 1}, {})
    table.replace("run", "r1", {"v": 2}, {}, etag)

    with pytest.raises(RecordChangedError):
        table.replace("run", "r1", {"v": 3}, {}, etag)
    assert table.get("run", "r1").document == {"v": 2}


def test_missing_document_is_none(table):
    assert table.get("run", "absent") is None


def test_query_filters_on_index_columns_and_pages_with_a_token(table):
    for number in range(5):
        status = "Succeeded" if number % 2 == 0 else "Failed"
        table.create("run", f"r{number}", {"n": number}, {"Status": status})
    table.create("other", "x", {"n": 99}, {"Status": "Succeeded"})

    first = table.query("run", {"Status": "Succeeded"}, page_size=2)
    token = first.continuation_token
    second = table.query("run", {"Status": "Succeeded"}, page_size=2, continuation_token=token)

    assert [doc["n"] for doc in first.documents] == [0, 2]
    assert [doc["n"] for doc in second.documents] == [4]
    assert second.continuation_token is None


def test_a_forged_continuation_token_is_a_clear_error(table):
    with pytest.raises(ValueError, match="continuationToken"):
        table.query("run", {}, page_size=2, continuation_token="not-base64-json!")

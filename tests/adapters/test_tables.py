import uuid

import pytest

from shared.adapters.run_store import TableWrite
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


def test_a_transaction_writes_every_row_of_one_partition_or_none(table):
    etag = table.create("home-1", "deployment:d", {"v": 1}, {"Kind": "deployment"})
    writes = [
        TableWrite("replace", "deployment:d", {"v": 2}, {"Kind": "deployment"}, etag),
        TableWrite("create", "run:r", {"run": 1}, {"Kind": "run"}),
        TableWrite("upsert", "ticket:t", {"ticket": "T"}, {"Kind": "ticket"}),
    ]

    etags = table.transact("home-1", writes)

    assert len(etags) == 3
    assert table.get("home-1", "deployment:d").etag == etags[0]
    with pytest.raises(RecordChangedError):  # the claim's ETag is stale: the run is not created either
        table.transact("home-1", [writes[0], TableWrite("create", "run:r2", {"run": 2}, {"Kind": "run"})])
    with pytest.raises(RecordExistsError):
        table.transact("home-1", [TableWrite("upsert", "ticket:t2", {}, {"Kind": "ticket"}), writes[1]])
    assert table.get("home-1", "run:r2") is None
    assert table.get("home-1", "ticket:t2") is None
    assert table.get("home-1", "deployment:d").document == {"v": 2}


def test_a_query_without_a_partition_filters_across_the_table(table):
    table.create("home-1", "run:a", {"n": 1}, {"Kind": "run"})
    table.create("home-2", "run:b", {"n": 2}, {"Kind": "run"})
    table.create("home-2", "deployment:d", {"n": 3}, {"Kind": "deployment"})

    page = table.query(None, {"Kind": "run"}, page_size=10)

    assert sorted(doc["n"] for doc in page.documents) == [1, 2]


def test_query_widened_by_one_key_finds_the_matching_rows_and_that_row_in_key_order(table):
    table.create("home", "run:r1", {"id": "r1"}, {"Kind": "run"})
    for request in ("b", "a"):
        table.create("home", f"joiner:r1:{request}", {"request": request}, {"Kind": "joiner", "RunId": "r1"})
    table.create("home", "joiner:r2:c", {"request": "c"}, {"Kind": "joiner", "RunId": "r2"})

    page = table.query("home", {"Kind": "joiner", "RunId": "r1"}, page_size=10, or_key="run:r1")

    assert page.documents == [{"request": "a"}, {"request": "b"}, {"id": "r1"}]

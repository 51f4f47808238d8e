"""Key Vault secret responses against the official 7.5 examples: same keys and JSON types, documented enum values.

Extras: `recoverableDays`, which the service returns since 7.1 but the examples predate, `recoveryLevel` on list
items, which the examples show on bundles only, and `contentType`/`tags`, which come back whenever they were set (some
examples show them, others not). The secrets here all set a content type, so its type is checked where shown.
"""

import pytest
import requests

from devstack.emulator.testing import EmulatorHandle
from tests.emulator.example_shapes import example_response, shape_mismatches

EXAMPLES = "keyvault-examples"
EXTRA = {"recoverableDays", "recoveryLevel", "contentType", "tags"}
RECOVERY_LEVELS = {
    "Purgeable",
    "Recoverable+Purgeable",
    "Recoverable",
    "Recoverable+ProtectedSubscription",
    "CustomizedRecoverable+Purgeable",
    "CustomizedRecoverable",
    "CustomizedRecoverable+ProtectedSubscription",
}


class Vault:
    def __init__(self, emulator: EmulatorHandle) -> None:
        self.url = emulator.vault_url.rstrip("/")
        token = emulator.credential().get_token("https://vault.azure.net/.default").token
        self._session = requests.Session()
        self._session.headers["Authorization"] = f"Bearer {token}"
        self._verify = emulator.ca_bundle

    def call(self, method: str, path: str, body: dict | None = None, status: int = 200, **params: str) -> dict | None:
        response = self._session.request(
            method,
            f"{self.url}{path}",
            json=body,
            params={"api-version": "7.5", **params},
            verify=self._verify,
            timeout=10,
        )
        assert response.status_code == status, response.text
        return response.json() if response.content else None


@pytest.fixture
def vault(emulator) -> Vault:
    return Vault(emulator)


def matches(example_file: str, actual: dict, **options) -> list[str]:
    return shape_mismatches(example_response(f"{EXAMPLES}/{example_file}"), actual, extra=EXTRA, **options)


def test_set_get_and_update_match_the_examples(vault):
    created = vault.call("PUT", "/secrets/crpsecret", {"value": "mysecretvalue"})
    version = created["id"].rsplit("/", 1)[-1]
    fetched = vault.call("GET", f"/secrets/crpsecret/{version}")
    updated = vault.call(
        "PATCH",
        f"/secrets/crpsecret/{version}",
        {"tags": {"mytag": "myvalue"}, "contentType": "myContentType", "attributes": {"enabled": True}},
    )

    assert matches("SetSecret-example.json", created) == []
    assert matches("GetSecret-example.json", fetched) == []
    assert matches("UpdateSecret-example.json", updated) == []
    assert created["id"] == f"{vault.url}/secrets/crpsecret/{version}"
    assert created["attributes"]["recoveryLevel"] in RECOVERY_LEVELS


def test_listings_match_the_examples_and_link_absolutely(vault):
    for name in ("listsecrettest0", "listsecrettest1"):
        vault.call("PUT", f"/secrets/{name}", {"value": "v", "contentType": "plainText"})
    vault.call("PUT", "/secrets/listsecrettest0", {"value": "v2", "contentType": "plainText"})

    secrets = vault.call("GET", "/secrets", maxresults="1")
    versions = vault.call("GET", "/secrets/listsecrettest0/versions", maxresults="1")
    last_page = vault.call("GET", "/secrets")

    assert matches("GetSecrets-example.json", secrets) == []
    assert matches("GetSecretVersions-example.json", versions) == []
    assert secrets["nextLink"].startswith(f"{vault.url}/secrets?api-version=7.5&$skiptoken=")
    assert versions["nextLink"].startswith(f"{vault.url}/secrets/listsecrettest0/versions?")
    assert last_page["nextLink"] is None


def test_soft_delete_lifecycle_matches_the_examples(vault):
    for name in ("listdeletedsecrettest0", "listdeletedsecrettest1"):
        vault.call("PUT", f"/secrets/{name}", {"value": "v", "contentType": "plainText"})
        vault.call("DELETE", f"/secrets/{name}")
    vault.call("PUT", "/secrets/GetDeletedSecretTest", {"value": "v", "contentType": "plainText"})

    deleted = vault.call("DELETE", "/secrets/GetDeletedSecretTest")
    fetched = vault.call("GET", "/deletedsecrets/GetDeletedSecretTest")
    listed = vault.call("GET", "/deletedsecrets", maxresults="1")
    recovered = vault.call("POST", "/deletedsecrets/GetDeletedSecretTest/recover")
    vault.call("DELETE", "/secrets/GetDeletedSecretTest")
    purged = vault.call("DELETE", "/deletedsecrets/GetDeletedSecretTest", status=204)

    assert matches("DeleteSecret-example.json", deleted) == []
    assert matches("GetDeletedSecret-example.json", fetched) == []
    assert matches("GetDeletedSecrets-example.json", listed) == []
    assert matches("RecoverDeletedSecret-example.json", recovered) == []
    assert example_response(f"{EXAMPLES}/PurgeDeletedSecret-example.json", "204") is purged is None
    assert deleted["recoveryId"] == f"{vault.url}/deletedsecrets/GetDeletedSecretTest"

import base64
import json

import pytest

from handlers.principal import PRINCIPAL_HEADER, PRINCIPAL_ID_HEADER, UnauthenticatedError, caller_object_id, caller_of
from shared.problems import UNAUTHORIZED
from tests.handlers.handler_support import CALLER, OBJECT_ID_CLAIM, principal_header

OTHER = "9a8b7c6d-1111-2222-3333-444455556666"


def _encoded(document: object) -> str:
    return base64.b64encode(json.dumps(document).encode()).decode()


def _refusal(headers: dict[str, str]) -> UnauthenticatedError:
    with pytest.raises(UnauthenticatedError) as raised:
        caller_object_id(headers)
    return raised.value


def test_the_object_id_claim_of_the_principal_names_the_caller():
    assert caller_object_id({PRINCIPAL_HEADER: principal_header(CALLER)}) == CALLER


def test_the_short_oid_claim_is_accepted_too():
    assert caller_object_id({PRINCIPAL_HEADER: principal_header(CALLER, claim="oid")}) == CALLER


def test_the_long_claim_wins_when_both_are_present():
    claims = [{"typ": "oid", "val": OTHER}, {"typ": OBJECT_ID_CLAIM, "val": CALLER}]

    assert caller_object_id({PRINCIPAL_HEADER: _encoded({"claims": claims})}) == CALLER


def test_header_names_are_matched_whatever_their_case():
    assert caller_object_id({PRINCIPAL_HEADER.lower(): principal_header(CALLER)}) == CALLER
    assert caller_object_id({"x-ms-client-principal-id": CALLER}) == CALLER


def test_the_object_id_is_returned_in_lower_case():
    assert caller_object_id({PRINCIPAL_ID_HEADER: CALLER.upper()}) == CALLER
    assert caller_object_id({PRINCIPAL_HEADER: principal_header(CALLER.upper())}) == CALLER


def test_a_principal_whose_padding_was_lost_still_decodes():
    encoded = principal_header(CALLER).rstrip("=")
    assert encoded != principal_header(CALLER), "the example must need padding to prove anything"

    assert caller_object_id({PRINCIPAL_HEADER: encoded}) == CALLER


def test_the_id_header_alone_names_the_caller():
    assert caller_object_id({PRINCIPAL_ID_HEADER: f"  {CALLER} "}) == CALLER


def test_a_principal_without_an_object_id_claim_falls_back_to_the_id_header():
    principal = _encoded({"claims": [{"typ": "name", "val": "Ada"}]})

    assert caller_object_id({PRINCIPAL_HEADER: principal, PRINCIPAL_ID_HEADER: CALLER}) == CALLER


def test_agreeing_headers_are_accepted():
    headers = {PRINCIPAL_HEADER: principal_header(CALLER), PRINCIPAL_ID_HEADER: CALLER.upper()}

    assert caller_object_id(headers) == CALLER


def test_headers_naming_two_callers_are_refused():
    refusal = _refusal({PRINCIPAL_HEADER: principal_header(CALLER), PRINCIPAL_ID_HEADER: OTHER})

    assert "name different callers" in refusal.problem.detail


def test_no_identity_header_is_a_401_saying_which_header_to_send():
    problem = _refusal({"Content-Type": "application/json"}).problem

    assert problem.kind is UNAUTHORIZED
    assert problem.status == 401
    assert problem.detail.startswith("The request does not say who is calling.")
    assert PRINCIPAL_HEADER in problem.detail
    assert PRINCIPAL_ID_HEADER in problem.detail
    assert OBJECT_ID_CLAIM in problem.detail


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("not base64 at all!", "is not base64-encoded JSON"),
        (base64.b64encode(b"\xff\xfe\xfa").decode(), "is not base64-encoded JSON"),
        (base64.b64encode(b"{not json").decode(), "is not base64-encoded JSON"),
        (_encoded(["claims"]), "has no 'claims' list"),
        (_encoded({"claims": {"oid": CALLER}}), "has no 'claims' list"),
        (_encoded({"claims": [{"typ": "oid", "val": "ada@contoso.com"}]}), "'oid' claim 'ada@contoso.com' is not"),
        (_encoded({"claims": [{"typ": "name", "val": "Ada"}]}), "carries no object id claim"),
    ],
)
def test_an_unusable_principal_is_refused_with_the_reason(value, reason):
    problem = _refusal({PRINCIPAL_HEADER: value}).problem

    assert reason in problem.detail
    assert PRINCIPAL_ID_HEADER in problem.detail, "the refusal also says what to send instead"


def test_an_undecodable_principal_is_refused_even_with_a_valid_id_header():
    # A broken principal means a broken or forged client; the id header does not get to paper over it.
    refusal = _refusal({PRINCIPAL_HEADER: "%%%", PRINCIPAL_ID_HEADER: CALLER})

    assert "is not base64-encoded JSON" in refusal.problem.detail


@pytest.mark.parametrize("value", ["ada@contoso.com", "3f2504e0-4f89-41d3-9a0c", f"{CALLER}x"])
def test_an_id_header_that_is_not_a_guid_is_refused(value):
    refusal = _refusal({PRINCIPAL_ID_HEADER: value})

    assert f"{PRINCIPAL_ID_HEADER} '{value}' is not an object id" in refusal.problem.detail


def test_blank_identity_headers_count_as_missing():
    refusal = _refusal({PRINCIPAL_HEADER: " ", PRINCIPAL_ID_HEADER: ""})

    assert "does not say who is calling" in refusal.problem.detail


def test_app_roles_are_read_under_the_principals_role_type_and_groups_under_groups():
    role_type = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
    claims = [
        {"typ": OBJECT_ID_CLAIM, "val": CALLER},
        {"typ": role_type, "val": "Broker.Approver"},
        {"typ": "roles", "val": "Broker.Auditor"},
        {"typ": "groups", "val": OTHER.upper()},
        {"typ": "custom-role-type", "val": "Custom.Role"},
    ]

    caller = caller_of({PRINCIPAL_HEADER: _encoded({"claims": claims, "role_typ": "custom-role-type"})})

    assert caller.object_id == CALLER
    assert caller.roles == {"Broker.Approver", "Broker.Auditor", "Custom.Role"}
    assert caller.groups == {OTHER}


def test_a_caller_named_only_by_the_id_header_holds_no_role():
    caller = caller_of({PRINCIPAL_ID_HEADER: CALLER})

    assert (caller.object_id, caller.roles, caller.groups) == (CALLER, frozenset(), frozenset())

import pytest

from devstack.host.keys import FUNCTION_KEY_SETTING, MASTER_KEY_SETTING, AuthLevel, HostKeys, presented_key

KEYS = HostKeys(master="master-key", function="function-key")


@pytest.mark.parametrize(
    ("level", "presented", "authorized"),
    [
        (AuthLevel.ANONYMOUS, None, True),
        (AuthLevel.FUNCTION, "function-key", True),
        (AuthLevel.FUNCTION, "master-key", True),
        (AuthLevel.FUNCTION, "wrong", False),
        (AuthLevel.FUNCTION, None, False),
        (AuthLevel.ADMIN, "master-key", True),
        (AuthLevel.ADMIN, "function-key", False),
        (AuthLevel.ADMIN, "", False),
    ],
)
def test_authorization_levels(level, presented, authorized):
    assert KEYS.authorizes(level, presented) is authorized


def test_the_header_is_read_before_the_code_parameter():
    assert presented_key({"x-functions-key": "from-header"}, {"code": "from-query"}) == "from-header"
    assert presented_key({}, {"code": "from-query"}) == "from-query"
    assert presented_key({}, {}) is None


def test_keys_come_from_settings_or_are_generated():
    configured = HostKeys.from_settings({MASTER_KEY_SETTING: "m", FUNCTION_KEY_SETTING: "f"})
    generated = HostKeys.from_settings({MASTER_KEY_SETTING: "m"})

    assert (configured.master, configured.function, configured.generated) == ("m", "f", ())
    assert generated.master == "m"
    assert len(generated.function) >= 32
    assert generated.generated == (FUNCTION_KEY_SETTING,)
    assert HostKeys.from_settings({}).function != HostKeys.from_settings({}).function

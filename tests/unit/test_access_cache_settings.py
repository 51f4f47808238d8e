import pytest

from shared.config import DEFAULT_ACCESS_CACHE_SECONDS, DEFAULT_ROLE_DEFINITION_CACHE_SECONDS, Settings


def test_access_is_kept_two_minutes_and_role_definitions_six_hours_by_default():
    settings = Settings.from_env({})

    assert (settings.access_cache_seconds, settings.role_definition_cache_seconds) == (120.0, 21600.0)
    assert (DEFAULT_ACCESS_CACHE_SECONDS, DEFAULT_ROLE_DEFINITION_CACHE_SECONDS) == (120.0, 21600.0)


def test_the_cache_windows_are_read_from_their_settings_and_zero_keeps_nothing():
    settings = Settings.from_env({"BROKER_ACCESS_CACHE_SECONDS": "0", "BROKER_ROLE_DEFINITION_CACHE_SECONDS": "3600"})

    assert (settings.access_cache_seconds, settings.role_definition_cache_seconds) == (0.0, 3600.0)


@pytest.mark.parametrize("value", ["-1", "soon", "inf", "nan"])
def test_an_unusable_cache_window_is_refused_naming_the_setting(value):
    with pytest.raises(ValueError, match=f"BROKER_ACCESS_CACHE_SECONDS='{value}'"):
        Settings.from_env({"BROKER_ACCESS_CACHE_SECONDS": value})

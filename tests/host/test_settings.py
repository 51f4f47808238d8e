import json
from datetime import timedelta

import pytest

from devstack.host.host_config import HostConfigError, MessageEncoding, load_host_config, parse_timespan
from devstack.host.settings import (
    SettingsError,
    apply_settings,
    find_settings_file,
    read_local_settings,
    resolve_app_settings,
)


def _write(path, document):
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_local_settings_win_over_the_sample_which_is_the_fallback(tmp_path):
    assert find_settings_file(tmp_path) is None
    _write(tmp_path / "local.settings.sample.json", {"Values": {}})
    assert find_settings_file(tmp_path).name == "local.settings.sample.json"
    _write(tmp_path / "local.settings.json", {"Values": {}})
    assert find_settings_file(tmp_path).name == "local.settings.json"


def test_values_are_read_as_text_with_the_local_port(tmp_path):
    path = _write(
        tmp_path / "local.settings.json",
        {"IsEncrypted": False, "Values": {"A": "x", "FLAG": True, "N": 3}, "Host": {"LocalHttpPort": 7099}},
    )

    settings = read_local_settings(path)

    assert settings.values == {"A": "x", "FLAG": "true", "N": "3"}
    assert settings.http_port == 7099


@pytest.mark.parametrize("document", [{"IsEncrypted": True, "Values": {}}, {"Values": {"NESTED": {"a": 1}}}])
def test_unusable_settings_files_are_refused(tmp_path, document):
    with pytest.raises(SettingsError):
        read_local_settings(_write(tmp_path / "local.settings.json", document))


def test_the_environment_keeps_what_it_already_defines():
    environ = {"SET": "from-environment", "EMPTY": ""}

    applied = apply_settings({"SET": "from-file", "EMPTY": "from-file", "NEW": "from-file"}, environ)

    assert environ == {"SET": "from-environment", "EMPTY": "", "NEW": "from-file"}
    assert applied == ["NEW"]


def test_app_setting_expressions_resolve_anywhere_in_the_text():
    environ = {"PREFIX": "t1", "NAME": "orders"}

    assert resolve_app_settings("%PREFIX%-%NAME%", environ) == "t1-orders"
    assert resolve_app_settings("plain", environ) == "plain"
    with pytest.raises(SettingsError, match="MISSING"):
        resolve_app_settings("%MISSING%", environ)


def test_host_json_defaults(tmp_path):
    _write(tmp_path / "host.json", {"version": "2.0"})

    config = load_host_config(tmp_path)

    assert config.route_prefix == "api"
    queues = config.queues
    assert queues.message_encoding is MessageEncoding.BASE64
    assert (queues.batch_size, queues.new_batch_threshold, queues.max_dequeue_count) == (16, 8, 5)
    assert queues.visibility_timeout == timedelta(0)
    # Core Tools' development default; 1 minute in Azure.
    assert queues.max_polling_interval == timedelta(seconds=2)
    # Flex Consumption's default, the plan infra/ deploys.
    assert config.function_timeout == timedelta(minutes=30)


@pytest.mark.parametrize(("value", "expected"), [("00:05:00", timedelta(minutes=5)), ("-1", None)])
def test_function_timeout_comes_from_host_json_and_minus_one_means_none(tmp_path, value, expected):
    _write(tmp_path / "host.json", {"version": "2.0", "functionTimeout": value})

    assert load_host_config(tmp_path).function_timeout == expected


def test_host_json_values_with_keys_in_any_case(tmp_path):
    _write(
        tmp_path / "host.json",
        {
            "Extensions": {
                "HTTP": {"routePrefix": ""},
                "queues": {
                    "MessageEncoding": "None",
                    "batchSize": 4,
                    "maxDequeueCount": 2,
                    "visibilityTimeout": "00:00:01.5",
                    "maxPollingInterval": "00:01:00",
                },
            }
        },
    )

    config = load_host_config(tmp_path)

    assert config.route_prefix == ""
    assert config.queues.message_encoding is MessageEncoding.NONE
    assert config.queues.new_batch_threshold == 2  # half the batch size unless set
    assert config.queues.max_dequeue_count == 2
    assert config.queues.visibility_timeout == timedelta(seconds=1.5)
    assert config.queues.max_polling_interval == timedelta(minutes=1)


@pytest.mark.parametrize(
    "queues",
    [
        {"batchSize": 0},
        {"batchSize": 33},
        {"maxDequeueCount": 0},
        {"newBatchThreshold": -1},
        {"messageEncoding": "utf8"},
        {"maxPollingInterval": "00:00:00.050"},
        {"visibilityTimeout": "ten seconds"},
    ],
)
def test_host_json_values_the_host_refuses(tmp_path, queues):
    _write(tmp_path / "host.json", {"extensions": {"queues": queues}})

    with pytest.raises(HostConfigError):
        load_host_config(tmp_path)


def test_timespans():
    assert parse_timespan("00:00:05") == timedelta(seconds=5)
    assert parse_timespan("1.02:03:04.5") == timedelta(days=1, hours=2, minutes=3, seconds=4.5)
    assert parse_timespan("00:10") == timedelta(minutes=10)

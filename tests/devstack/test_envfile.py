"""run.env's format, the CA bundle and the host's settings file under `make run`, without processes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from devstack.ca_bundle import system_ca_file, write_ca_bundle
from devstack.envfile import read_env_file, unquote, write_env_file
from devstack.stack import write_host_settings

CONNECTION_STRING = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
    "QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
)
AWKWARD = {
    "WITH_SEMICOLONS": CONNECTION_STRING,
    "WITH_QUOTE": "it's here",
    "WITH_DOLLAR": "$HOME and `date` and \\n",
    "WITH_SPACES": "  padded  ",
    "EMPTY": "",
}


def test_values_survive_a_write_and_a_read(tmp_path):
    path = tmp_path / "run.env"

    write_env_file(path, AWKWARD)

    assert read_env_file(path) == AWKWARD
    assert path.stat().st_mode & 0o077 == 0


def test_bash_sources_exactly_the_values_that_were_written(tmp_path):
    path = tmp_path / "run.env"
    write_env_file(path, AWKWARD, sections=[("awkward ones", ["WITH_QUOTE"]), ("the rest", None)])
    dump = f"'{sys.executable}' -c 'import json, os; print(json.dumps(dict(os.environ)))'"

    result = subprocess.run(
        ["bash", "-c", f"set -a; source '{path}'; set +a; {dump}"],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    )

    sourced = json.loads(result.stdout)
    assert {name: sourced[name] for name in AWKWARD} == AWKWARD


def test_sections_group_the_names_under_comment_lines(tmp_path):
    path = tmp_path / "run.env"

    write_env_file(path, {"A": "1", "B": "2", "C": "3"}, sections=[("first", ["B"]), ("empty", ["Z"]), ("rest", None)])

    assert path.read_text().splitlines() == ["# first", "B='2'", "", "# rest", "A='1'", "C='3'"]


def test_bare_and_double_quoted_values_read_as_the_shell_reads_them(tmp_path):
    path = tmp_path / "other.env"
    path.write_text('# a comment\nBARE=plain\nexport DOUBLE="a \\"b\\" $c"\nMIXED=\'x\'"y"z\n', encoding="utf-8")

    assert read_env_file(path) == {"BARE": "plain", "DOUBLE": 'a "b" $c', "MIXED": "xyz"}
    with pytest.raises(ValueError, match="unterminated"):
        unquote("'open")


def test_names_that_are_not_shell_variables_are_refused(tmp_path):
    with pytest.raises(ValueError, match="not a shell variable name"):
        write_env_file(tmp_path / "x.env", {"A-B": "1"})


def test_the_ca_bundle_puts_the_local_ca_first_then_an_earlier_bundle_then_the_system_roots(tmp_path):
    local, earlier = tmp_path / "ca.pem", tmp_path / "corporate.pem"
    local.write_text(_pem("LOCAL"), encoding="utf-8")
    earlier.write_text(_pem("CORPORATE"), encoding="utf-8")
    system = system_ca_file({}).read_text().strip()

    text = write_ca_bundle(tmp_path / "bundle.pem", [local], environ={"REQUESTS_CA_BUNDLE": str(earlier)}).read_text()

    assert text.index("LOCAL") < text.index("CORPORATE") < text.index(system)


def test_a_ca_bundle_rewritten_while_exported_does_not_nest_itself(tmp_path):
    local, bundle = tmp_path / "ca.pem", tmp_path / "bundle.pem"
    local.write_text(_pem("LOCAL"), encoding="utf-8")
    write_ca_bundle(bundle, [local], environ={})

    text = write_ca_bundle(bundle, [local], environ={"REQUESTS_CA_BUNDLE": str(bundle)}).read_text()

    assert text.count("LOCAL") == 1
    assert system_ca_file({}).read_text().strip() in text


def test_the_hosts_settings_keep_everything_but_storage_connection_strings(tmp_path):
    source = tmp_path / "local.settings.json"
    source.write_text(
        json.dumps(
            {
                "IsEncrypted": False,
                "Values": {
                    "AzureWebJobsStorage": CONNECTION_STRING,
                    "OtherStorage": "UseDevelopmentStorage=true",
                    "KEY_ROTATION_SCHEDULE": "0 0 3 * * *",
                },
                "Host": {"LocalHttpPort": 7071},
            }
        ),
        encoding="utf-8",
    )

    written = json.loads(
        write_host_settings(tmp_path / "host.settings.json", (tmp_path / "missing.json", source)).read_text()
    )

    assert written["Values"] == {"KEY_ROTATION_SCHEDULE": "0 0 3 * * *"}
    assert written["Host"] == {"LocalHttpPort": 7071}


def test_a_settings_file_that_is_not_json_stops_the_host_start_with_its_name(tmp_path):
    broken = tmp_path / "local.settings.json"
    broken.write_text("{not json", encoding="utf-8")

    with pytest.raises(RuntimeError, match=r"local\.settings\.json is not valid JSON"):
        write_host_settings(tmp_path / "host.settings.json", (broken,))


def _pem(marker: str) -> str:
    return f"-----BEGIN CERTIFICATE-----\n{marker}\n-----END CERTIFICATE-----\n"

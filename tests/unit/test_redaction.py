import io
import logging

import pytest

from shared.redaction import REDACTED, RedactingFilter, SecretRegistry, default_registry, install, redact

KEY = "k3y-0123456789abcdefABCDEF"
OTHER_KEY = "zzzzzzzz99999999"


@pytest.fixture
def registry() -> SecretRegistry:
    secrets = SecretRegistry()
    secrets.register(KEY, OTHER_KEY)
    return secrets


@pytest.fixture
def capture(registry):
    """A private logger whose handler carries the filter, writing formatted records to a buffer."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s [%(custom)s]", defaults={"custom": "-"}))
    install([handler], registry)
    logger = logging.getLogger(f"test-redaction-{id(stream)}")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield logger, stream
    logger.removeHandler(handler)


@pytest.mark.parametrize(
    ("text", "secrets", "expected"),
    [
        (f"key={KEY}", [KEY], f"key={REDACTED}"),
        (f"{KEY}{KEY}", [KEY], REDACTED * 2),
        ("nothing here", [KEY], "nothing here"),
        ("abcdefghXYZ and abcdefgh", ["abcdefgh", "abcdefghXYZ"], f"{REDACTED} and {REDACTED}"),
        ("short secret abc stays", ["abc"], "short secret abc stays"),
        ("no secrets", [], "no secrets"),
    ],
)
def test_redact(text, secrets, expected):
    assert redact(text, secrets) == expected


def test_the_registry_ignores_empty_and_short_values_and_can_forget():
    secrets = SecretRegistry()

    secrets.register(None, "", "short", KEY)
    assert secrets.snapshot() == (KEY,)
    assert secrets.redact(f"a {KEY} b") == f"a {REDACTED} b"

    secrets.forget(KEY, "never-registered")
    assert secrets.snapshot() == ()


def test_the_registry_forgets_the_oldest_beyond_its_bound():
    secrets = SecretRegistry(max_entries=2)

    secrets.register("first-secret", "second-secret")
    secrets.register("first-secret")  # refreshed: now the newest
    secrets.register("third-secret")

    assert set(secrets.snapshot()) == {"first-secret", "third-secret"}


def test_message_and_arguments_are_scrubbed(capture):
    logger, stream = capture

    logger.info("listKeys returned %s and %r", KEY, {"secondaryKey": OTHER_KEY})

    output = stream.getvalue()
    assert KEY not in output
    assert OTHER_KEY not in output
    assert f"listKeys returned {REDACTED} and {{'secondaryKey': '{REDACTED}'}}" in output


def test_tracebacks_are_scrubbed(capture):
    logger, stream = capture

    try:
        raise RuntimeError(f"response body: {{'primaryKey': '{KEY}'}}")
    except RuntimeError:
        logger.exception("call failed")

    output = stream.getvalue()
    assert KEY not in output
    assert "RuntimeError: response body: {'primaryKey': '[REDACTED]'}" in output


def test_a_prerendered_traceback_is_scrubbed_too(registry):
    record = logging.makeLogRecord({"msg": "failed", "exc_text": f"Traceback ... {KEY}"})

    RedactingFilter(registry).filter(record)

    assert record.exc_text == f"Traceback ... {REDACTED}"


def test_stack_info_and_extra_attributes_are_scrubbed(capture):
    logger, stream = capture

    logger.warning("with extras", extra={"custom": f"key {KEY}", "count": 3}, stack_info=True)

    output = stream.getvalue()
    assert KEY not in output
    assert f"[key {REDACTED}]" in output


def test_stack_info_is_redacted_on_the_record(registry):
    record = logging.makeLogRecord({"msg": "m", "stack_info": f"Stack (most recent call last): {KEY}"})

    RedactingFilter(registry).filter(record)

    assert record.stack_info == f"Stack (most recent call last): {REDACTED}"


def test_a_broken_format_string_is_flattened_and_scrubbed(capture):
    logger, stream = capture

    logger.error("two placeholders %s %s", KEY)  # noqa: PLE1206 - the broken call is the case under test

    output = stream.getvalue()
    assert KEY not in output
    assert f"two placeholders %s %s ('{REDACTED}',)" in output


def test_records_pass_untouched_when_nothing_is_registered():
    record = logging.makeLogRecord({"msg": "value %s", "args": ("x",)})

    assert RedactingFilter(SecretRegistry()).filter(record) is True
    assert record.args == ("x",)


def test_install_uses_the_default_registry_unless_told_otherwise():
    handler = logging.NullHandler()

    redacting = install([handler])

    assert handler.filters == [redacting]
    default_registry.register(KEY)
    try:
        record = logging.makeLogRecord({"msg": KEY})
        redacting.filter(record)
        assert record.msg == REDACTED
    finally:
        default_registry.forget(KEY)

"""shared/wire.py: the bounded JSON reader both intakes use, each rule with the limit it names, and the best-effort
ticket reader for messages it refuses."""

import contextlib
import json
import random

import pytest

from shared.problems import PAYLOAD_TOO_LARGE, UNSUPPORTED_MEDIA_TYPE, VALIDATION_FAILED
from shared.wire import (
    HTTP_LIMITS,
    MAX_DEPTH,
    MAX_STRING,
    QUEUE_LIMITS,
    QUEUE_MAX_BYTES,
    WireError,
    WireLimits,
    check_media_type,
    decoded_text,
    lenient_text,
    read_json_object,
    top_level_string,
)

SMALL = WireLimits(max_bytes=100, subject="The body")


def refusal(raw, limits=QUEUE_LIMITS) -> WireError:
    with pytest.raises(WireError) as caught:
        read_json_object(raw, limits)
    return caught.value


def nested(depth: int) -> str:
    """An object nested `depth` deep, the top-level object being depth 1."""
    return '{"a": ' * (depth - 1) + "{}" + "}" * (depth - 1)


# Accepted.


@pytest.mark.parametrize("raw", [b'{"ticket": "INC-1"}', '{"ticket": "INC-1"}', b' \n{"ticket": "INC-1"}\t'])
def test_an_object_is_read_from_bytes_or_text(raw):
    assert read_json_object(raw, QUEUE_LIMITS) == {"ticket": "INC-1"}


def test_a_utf8_byte_order_mark_is_accepted_and_ignored():
    assert read_json_object(b'\xef\xbb\xbf{"owner": "Zo\xc3\xab"}', QUEUE_LIMITS) == {"owner": "Zoë"}
    assert read_json_object('\ufeff{"a": 1}', QUEUE_LIMITS) == {"a": 1}
    assert decoded_text(b'\xef\xbb\xbf{"a": 1}') == decoded_text('\ufeff{"a": 1}') == '{"a": 1}'


def test_nesting_exactly_at_the_limit_is_read():
    document = read_json_object(nested(MAX_DEPTH), QUEUE_LIMITS)

    depth = 1
    while document:
        document, depth = document["a"], depth + 1
    assert depth == MAX_DEPTH


def test_brackets_inside_strings_do_not_count_as_nesting():
    text = json.dumps({"a": "[" * 500 + "{" * 500, "b": ['"]]]\\"' + "[" * 40]})

    assert read_json_object(text, QUEUE_LIMITS)["a"].startswith("[[[")


def test_a_string_exactly_at_the_limit_is_read():
    assert len(read_json_object(json.dumps({"a": "x" * MAX_STRING}), QUEUE_LIMITS)["a"]) == MAX_STRING


def test_a_body_exactly_at_the_size_limit_is_read():
    raw = b'{"a": "' + b"x" * (100 - 9) + b'"}'
    assert len(raw) == 100

    assert read_json_object(raw, SMALL)["a"] == "x" * 91


def test_escapes_and_non_ascii_text_are_read():
    assert read_json_object('{"a": "\\u00e9\\ud83d\\ude00\\n"}', QUEUE_LIMITS) == {"a": "é\U0001f600\n"}


# Refused, each naming its limit.


def test_a_body_over_the_size_limit_names_the_limit_and_its_size():
    error = refusal(b"{" + b" " * QUEUE_MAX_BYTES + b"}")

    assert (error.limit, error.maximum) == ("size", 65536)
    assert error.message == "The request message is 65,538 bytes; the limit is 65,536 bytes (64 KiB)."
    assert error.problem_type is PAYLOAD_TOO_LARGE
    assert "1 MiB" in refusal(b" " * (HTTP_LIMITS.max_bytes + 1), HTTP_LIMITS).message


def test_nesting_one_over_the_limit_is_refused_without_recursion_and_says_where():
    error = refusal(nested(MAX_DEPTH + 1))

    assert (error.limit, error.maximum, error.where) == (
        "depth",
        32,
        "line 1, column 193",
    )  # 32 times '{"a": ', then the 33rd
    assert "more than 32 deep" in error.message


@pytest.mark.parametrize("raw", ["[" * 2000, '{"a": ' + "[" * 2000 + "]" * 2000 + "}", "[" * 1_000_000])
def test_nesting_thousands_deep_is_refused_as_too_deep(raw):
    error = refusal(raw, HTTP_LIMITS)

    assert (error.limit, error.maximum) == ("depth", 32)


def test_a_string_over_the_limit_names_its_member():
    error = refusal(json.dumps({"tags": {"owner": "x" * (MAX_STRING + 1)}}))

    assert (error.limit, error.maximum, error.field) == ("string-length", 8192, "tags.owner")
    assert error.message == (
        "The request message has a string of 8,193 characters at tags.owner; the limit is 8,192 characters."
    )


def test_a_huge_ticket_is_refused_as_too_long():
    error = refusal(json.dumps({"ticket": "T" * 60_000, "requestedBy": "someone"}))

    assert (error.limit, error.field) == ("string-length", "ticket")


def test_a_member_name_over_the_limit_is_refused_too():
    error = refusal(json.dumps({"list": [{"k" * (MAX_STRING + 1): 1}]}))

    assert error.limit == "string-length"
    assert error.field.startswith("list.0.kkk")
    assert len(error.field) < 80, "names are shortened in messages"


def test_duplicate_members_are_refused_naming_the_member():
    error = refusal('{"ticket": "A", "modelId": "m", "ticket": "B"}')

    assert (error.limit, error.field) == ("duplicate-key", "ticket")
    assert "'ticket' more than once" in error.message


def test_duplicates_in_a_nested_object_are_refused_too():
    assert refusal('{"tags": {"a": "1", "a": "2"}}').limit == "duplicate-key"


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ('{"a": 1}'.encode("utf-16"), "UTF-16LE"),
        ('{"a": 1}'.encode("utf-16-be"), "NUL byte"),
        ('{"a": 1}'.encode("utf-16-le"), "NUL byte"),
        (b"\xfe\xff" + '{"a": 1}'.encode("utf-16-be"), "UTF-16BE"),
        ('{"a": 1}'.encode("utf-32"), "UTF-32LE"),
        (b"\x00\x00\xfe\xff" + '{"a": 1}'.encode("utf-32-be"), "UTF-32BE"),
        (b'{"owner": "Zo\xeb"}', "not UTF-8 (byte 13"),
        (b'{"a": "\xed\xa0\x80"}', "not UTF-8"),  # a surrogate encoded as UTF-8 (CESU-8)
        (b'{"a": "\xc0\xaf"}', "not UTF-8"),  # an overlong encoding
    ],
)
def test_text_that_is_not_utf8_is_refused(raw, words):
    error = refusal(raw)

    assert error.limit == "encoding"
    assert words in error.message
    assert error.problem_type is VALIDATION_FAILED


def test_an_escaped_unpaired_surrogate_is_refused_as_not_unicode():
    error = refusal('{"tags": {"x": "\\ud800"}}')

    assert (error.limit, error.field) == ("encoding", "tags.x")
    assert refusal('{"\\uDFFF": 1}').limit == "encoding"
    assert read_json_object('{"a": "\\\\ud800"}', QUEUE_LIMITS) == {"a": "\\ud800"}, "an escaped backslash is text"


def test_text_holding_an_unpaired_surrogate_is_refused():
    assert refusal('{"a": "\ud800"}').limit == "encoding"


@pytest.mark.parametrize(
    ("raw", "limit"),
    [
        ("", "empty"),
        (" \r\n\t", "empty"),
        (b"\xef\xbb\xbf", "empty"),
        ("{'a': 1}", "json-syntax"),
        ('{"a": 1', "json-syntax"),
        ('{"a": 1} {"b": 2}', "json-syntax"),
        ('{"a": NaN}', "json-syntax"),
        ('{"a": -Infinity}', "json-syntax"),
        ('{"a": 1e400}', "json-syntax"),
        ('{"a": "\u0001"}', "json-syntax"),
        ('{"a": ' + "9" * 65 + "}", "number-length"),
        ('{"a": ' + "9" * 5000 + "}", "number-length"),
        ("[]", "top-level"),
        ('"text"', "top-level"),
        ("null", "top-level"),
        ("3", "top-level"),
        ("true", "top-level"),
    ],
)
def test_every_other_failure_names_its_rule(raw, limit):
    error = refusal(raw)

    assert error.limit == limit
    assert error.message.startswith("The request message ")
    assert error.problem_type is VALIDATION_FAILED


def test_a_syntax_error_says_where():
    error = refusal('{\n  "a": 1,\n}', HTTP_LIMITS)

    assert error.where == "line 3, column 1"
    assert (
        error.message == "The body is not JSON: Expecting property name enclosed in double quotes (line 3, column 1)."
    )


@pytest.mark.parametrize("raw", ["[1, 2]", '"x"', "null", "0", "false"])
def test_a_top_level_that_is_not_an_object_says_what_it_is(raw):
    assert refusal(raw).message.startswith("The request message must be a JSON object, not ")


def test_nothing_but_wire_errors_escape_whatever_the_input():
    seeds = [
        b'{"ticket": "INC-1", "tags": {"a": [1, 2.5, true, null, "\\u00e9"]}}',
        b'\xef\xbb\xbf{"a": "\\ud83d\\ude00"}',
        b"[" * 40 + b"]" * 40,
    ]
    alphabet = b'{}[]":,\\ud8e0aZ9.-+eE \n\x00\xff\xef\xbb\xbf'
    generator = random.Random(10)
    for _ in range(3000):
        raw = bytearray(generator.choice(seeds))
        for _ in range(generator.randint(1, 6)):
            position = generator.randint(0, len(raw))
            raw[position:position] = bytes(generator.choices(alphabet, k=generator.randint(1, 4)))
        with contextlib.suppress(WireError):
            read_json_object(bytes(raw), SMALL)
        top_level_string(bytes(raw), "ticket")


# The problem a refusal answers with.


def test_a_refusal_is_a_problem_naming_the_limit():
    body = refusal(nested(40), HTTP_LIMITS).problem().to_dict()

    assert body["type"].endswith("/validation-failed")
    assert body["status"] == 400
    assert body["detail"].startswith("The body nests objects and arrays more than 32 deep")
    assert body["limit"] == {"name": "depth", "maximum": 32, "where": "line 1, column 193"}
    assert body["errors"] == [{"field": "(body)", "message": body["detail"]}]


def test_size_and_media_type_refusals_have_their_own_statuses():
    too_big = refusal(b" " * 101, SMALL).problem().to_dict()
    with pytest.raises(WireError) as caught:
        check_media_type("text/plain")
    wrong_type = caught.value.problem().to_dict()

    assert (too_big["status"], too_big["limit"]) == (413, {"name": "size", "maximum": 100})
    assert "errors" not in too_big
    assert (wrong_type["status"], wrong_type["limit"]) == (415, {"name": "media-type"})
    assert caught.value.problem_type is UNSUPPORTED_MEDIA_TYPE


# Content types.


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "Application/JSON",
        "application/json; charset=utf-8",
        'application/json;charset="UTF-8"',
        "application/merge-patch+json",
        "application/vnd.contoso.deployment+json; charset=utf-8",
        "application/json; odata=verbose",
    ],
)
def test_json_in_utf8_is_the_accepted_media_type(content_type):
    check_media_type(content_type)


@pytest.mark.parametrize(
    ("content_type", "words"),
    [
        (None, "has no Content-Type"),
        ("", "has no Content-Type"),
        ("text/plain", "is not JSON"),
        ("text/json", "is not JSON"),
        ("application/x-www-form-urlencoded", "is not JSON"),
        ("application/+json", "is not JSON"),
        ("application/jsonp", "is not JSON"),
        ("multipart/form-data; boundary=x", "is not JSON"),
        ("application/json, text/plain", "is not JSON"),
        ("application/json; charset=utf-16", "charset other than UTF-8"),
        ("application/json; charset=iso-8859-1", "charset other than UTF-8"),
    ],
)
def test_anything_else_is_refused(content_type, words):
    with pytest.raises(WireError) as caught:
        check_media_type(content_type)

    assert caught.value.limit == "media-type"
    assert words in caught.value.message
    assert "application/json" in caught.value.message


# The ticket of a message that cannot be read as JSON.


@pytest.mark.parametrize(
    ("raw", "ticket"),
    [
        ('{"ticket": "INC-1", ', "INC-1"),
        ('{"a": [' * 3000 + '"x"], "ticket": "INC-2"}', None),  # nested: not a member of the top-level object
        ('{"ticket": "INC-3", "a": ' + "[" * 3000, "INC-3"),
        ('{"x": {"ticket": "inner"}, "ticket": "INC-4"}', "INC-4"),
        ('{"a": "\\"ticket\\": \\"fake\\"", "ticket": "INC-5"}', "INC-5"),
        ('{"a": "ticket", "ticket": "INC-6"}', "INC-6"),
        ('{"ticket": "INC-7", "ticket": "INC-8"}', "INC-7"),
        ('{"\\u0074icket": "INC-9"}', "INC-9"),
        ('{"ticket": "INC-\\u00e9"}', "INC-é"),
        ('{"ticket": "\\ud800X"}', "\ufffdX"),
        (b'\xef\xbb\xbf{"ticket": "INC-\xff"}', "INC-\ufffd"),
        ('{"ticket": 7}', None),
        ('{"ticket": "  "}', None),
        ('["ticket", "x"]', None),
        ("not json", None),
        ('{"ticket": "cut sh', "cut sh"),
        ('{"ticket": "cut at an escape \\u00', "cut at an escape "),
        ('{"ticket": "cut after a backslash \\', "cut after a backslash "),
    ],
)
def test_a_ticket_is_read_from_the_top_level_object_of_text_that_is_not_json(raw, ticket):
    assert top_level_string(raw, "ticket") == ticket


def test_a_huge_ticket_is_read_but_only_as_far_as_the_scan_goes():
    raw = json.dumps({"ticket": "T" * 100_000})

    ticket = top_level_string(raw.encode(), "ticket")

    assert ticket is not None
    assert set(ticket) == {"T"}
    assert len(ticket) < QUEUE_MAX_BYTES


def test_lenient_text_never_fails():
    assert lenient_text(b"\xef\xbb\xbfa\xffb") == "a\ufffdb"
    assert lenient_text("\ufeffa\ud800") == "a\ufffd"

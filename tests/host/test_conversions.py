import azure.functions as func
import pytest

from devstack.host.host_config import MessageEncoding
from devstack.host.http_front import to_web_response
from devstack.host.queue_storage import MessageCodec, UndecodableMessageError, queue_output_bodies


def test_base64_codec_round_trips_bytes_and_skips_whitespace_like_dotnet():
    codec = MessageCodec(MessageEncoding.BASE64)

    assert codec.encode("héllo".encode()) == "aMOpbGxv"
    assert codec.decode("aMOp\nbGxv") == "héllo".encode()
    with pytest.raises(UndecodableMessageError):
        codec.decode("not base64!")


def test_none_codec_passes_text_through():
    codec = MessageCodec(MessageEncoding.NONE)

    assert codec.encode(b"plain") == "plain"
    assert codec.decode("not base64!") == b"not base64!"


def test_queue_outputs_take_what_the_worker_accepts():
    message = func.QueueMessage(body="from a message")

    assert list(queue_output_bodies("one")) == [b"one"]
    assert list(queue_output_bodies(b"raw")) == [b"raw"]
    assert list(queue_output_bodies(message)) == [b"from a message"]
    assert list(queue_output_bodies(["a", message])) == [b"a", b"from a message"]
    for unsupported in ({"a": 1}, 42, [1, 2]):
        with pytest.raises(TypeError):
            list(queue_output_bodies(unsupported))


def test_http_response_keeps_status_headers_and_body():
    response = to_web_response(
        func.HttpResponse(
            b"\x00\x01", status_code=418, headers={"X-Teapot": "yes"}, mimetype="application/octet-stream"
        )
    )

    assert response.status == 418
    assert response.headers["X-Teapot"] == "yes"
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.body == b"\x00\x01"


def test_text_mimetypes_get_the_charset_and_explicit_content_types_win():
    text = to_web_response(func.HttpResponse("hé", mimetype="text/html", charset="utf-8"))
    explicit = to_web_response(func.HttpResponse("{}", headers={"Content-Type": "application/problem+json"}))

    assert text.headers["Content-Type"] == "text/html; charset=utf-8"
    assert explicit.headers["Content-Type"] == "application/problem+json"


def test_str_none_and_unsupported_results():
    text = to_web_response("hi")

    assert (text.status, text.body, text.headers["Content-Type"]) == (200, b"hi", "text/plain; charset=utf-8")
    assert to_web_response(None).status == 204
    with pytest.raises(TypeError):
        to_web_response({"dict": "is not a response"})

from itertools import count

from shared.health import check_health
from shared.version import broker_version


def _ticking_clock(step: float = 0.002):
    ticks = count()
    return lambda: next(ticks) * step


def _broken() -> None:
    raise ConnectionError("connection refused\nretry details")


def test_all_probes_answering_is_healthy():
    report = check_health({"storage": lambda: None}, clock=_ticking_clock())

    assert report.healthy
    assert report.as_dict() == {
        "status": "healthy",
        "version": broker_version(),
        "dependencies": {"storage": {"status": "ok", "latencyMs": 2.0}},
    }


def test_one_failing_probe_degrades_and_reports_its_first_line():
    report = check_health({"storage": lambda: None, "arm": _broken}, clock=_ticking_clock())

    body = report.as_dict()
    assert not report.healthy
    assert body["status"] == "degraded"
    assert body["dependencies"]["storage"]["status"] == "ok"
    assert body["dependencies"]["arm"] == {
        "status": "unavailable",
        "latencyMs": 2.0,
        "error": "ConnectionError: connection refused",
    }


def test_an_exception_without_message_is_named_by_type():
    def silent() -> None:
        raise TimeoutError

    body = check_health({"vault": silent}).as_dict()

    assert body["dependencies"]["vault"]["error"] == "TimeoutError"

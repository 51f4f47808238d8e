from datetime import timedelta

from devstack.host.queue_listener import PollingBackoff


def _seconds(backoff: PollingBackoff, count: int) -> list[float]:
    return [backoff.next_wait().total_seconds() for _ in range(count)]


def test_empty_polls_wait_twice_as_long_each_time_up_to_the_maximum():
    assert _seconds(PollingBackoff(timedelta(seconds=1)), 6) == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


def test_finding_messages_starts_again_from_the_minimum():
    backoff = PollingBackoff(timedelta(minutes=1))
    _seconds(backoff, 5)

    backoff.reset()

    assert _seconds(backoff, 2) == [0.1, 0.2]

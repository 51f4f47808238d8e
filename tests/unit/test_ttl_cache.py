import threading
from collections.abc import Callable

import pytest

from shared.ttl_cache import TtlCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Loader:
    """Counts loads; each returns the next number."""

    def __init__(self) -> None:
        self.loads = 0

    def __call__(self) -> int:
        self.loads += 1
        return self.loads


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_a_value_is_loaded_once_and_served_until_its_ttl_ends(clock):
    cache: TtlCache[str, int] = TtlCache(120, clock=clock)
    load = Loader()

    first = cache.lookup("scope", load)
    clock.now += 119.9
    again = cache.lookup("scope", load)
    clock.now += 0.1
    expired = cache.lookup("scope", load)

    assert (first.value, first.hit) == (1, False)
    assert (again.value, again.hit) == (1, True)
    assert (expired.value, expired.hit) == (2, False)


def test_keys_are_kept_apart(clock):
    cache: TtlCache[tuple[str, str], int] = TtlCache(120, clock=clock)
    load = Loader()

    assert cache.get(("scope", "alice"), load) == 1
    assert cache.get(("scope", "bob"), load) == 2
    assert cache.get(("scope", "alice"), load) == 1


def test_a_fresh_lookup_loads_again_and_keeps_the_new_value(clock):
    cache: TtlCache[str, int] = TtlCache(120, clock=clock)
    load = Loader()
    cache.get("scope", load)

    fresh = cache.lookup("scope", load, fresh=True)

    assert (fresh.value, fresh.hit) == (2, False)
    assert cache.lookup("scope", load).value == 2


def test_a_loader_that_raises_leaves_nothing_behind(clock):
    cache: TtlCache[str, int] = TtlCache(120, clock=clock)

    def refused() -> int:
        raise PermissionError("403 AuthorizationFailed")

    with pytest.raises(PermissionError):
        cache.get("scope", refused)

    assert len(cache) == 0
    assert cache.lookup("scope", Loader()).hit is False


def test_a_ttl_of_zero_keeps_nothing(clock):
    cache: TtlCache[str, int] = TtlCache(0, clock=clock)
    load = Loader()

    assert [cache.get("scope", load) for _ in range(3)] == [1, 2, 3]
    assert len(cache) == 0


def test_a_negative_ttl_is_refused():
    with pytest.raises(ValueError, match="negative"):
        TtlCache(-1)


def test_a_full_cache_drops_expired_entries_first_then_the_oldest(clock):
    cache: TtlCache[str, int] = TtlCache(10, clock=clock, max_entries=3)
    cache.get("old", lambda: 1)
    clock.now += 11
    cache.get("a", lambda: 2)
    cache.get("b", lambda: 3)

    cache.get("c", lambda: 4)  # "old" has expired: it goes, nothing else does
    cache.get("d", lambda: 5)  # full of live entries: the oldest, "a", goes

    assert len(cache) == 3
    assert [cache.lookup(key, lambda: 0).hit for key in ("b", "c", "d")] == [True, True, True]
    assert cache.lookup("a", lambda: 0).hit is False


def test_concurrent_lookups_of_a_missing_key_load_it_once(clock):
    cache: TtlCache[str, int] = TtlCache(120, clock=clock)
    release = threading.Event()
    loads: list[int] = []

    def slow_load() -> int:
        loads.append(1)
        release.wait(5)
        return 7

    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get("scope", slow_load))) for _ in range(8)]
    for thread in threads:
        thread.start()
    _until(lambda: len(loads) == 1)
    release.set()
    for thread in threads:
        thread.join(5)

    assert results == [7] * 8
    assert len(loads) == 1


def test_when_a_concurrent_load_fails_the_waiting_lookups_load_for_themselves(clock):
    cache: TtlCache[str, int] = TtlCache(120, clock=clock)
    attempts: list[int] = []
    started = threading.Event()
    release = threading.Event()

    def flaky() -> int:
        attempts.append(1)
        if len(attempts) == 1:
            started.set()
            release.wait(5)
            raise ConnectionError("reset")
        return 3

    failures: list[Exception] = []

    def first() -> None:
        try:
            cache.get("scope", flaky)
        except ConnectionError as error:
            failures.append(error)

    thread = threading.Thread(target=first)
    thread.start()
    started.wait(5)
    waiter_result: list[int] = []
    waiter = threading.Thread(target=lambda: waiter_result.append(cache.get("scope", flaky)))
    waiter.start()
    release.set()
    thread.join(5)
    waiter.join(5)

    assert len(failures) == 1
    assert waiter_result == [3]


def _until(condition: Callable[[], bool]) -> None:
    event = threading.Event()
    for _ in range(500):
        if condition():
            return
        event.wait(0.01)
    raise AssertionError("condition not met")

"""The write pacer: what ARM's remaining-writes header says, turned into "write now" or "come back then"."""

import threading

import pytest

from shared.pacing import DEFAULT_RESERVE, UNMEASURED_HORIZON_SECONDS, WritePacer

SUBSCRIPTION = "0b1f6471-1bf0-4dda-aec3-111122223333"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def pacer(clock: Clock, *, refill: float = 2.0, reserve: int = DEFAULT_RESERVE) -> WritePacer:
    return WritePacer(reserve=reserve, refill_per_second=refill, monotonic=clock)


def test_a_subscription_never_written_to_is_not_paced(clock):
    assert pacer(clock).admit(SUBSCRIPTION, "run-1/provision") is None


def test_writes_go_at_once_while_more_than_the_reserve_remains(clock):
    paced = pacer(clock)
    paced.observe(SUBSCRIPTION, 5)

    admitted = [paced.admit(SUBSCRIPTION, f"run-{number}/provision") for number in range(3)]

    # 5 left, 2 kept in reserve: three writes may go; the fourth would eat into the reserve.
    assert admitted == [None, None, None]
    assert paced.admit(SUBSCRIPTION, "run-9/provision") == pytest.approx(0.5)


def test_subscription_ids_match_in_any_case(clock):
    paced = pacer(clock)
    paced.observe(SUBSCRIPTION.upper(), 0)

    assert paced.admit(SUBSCRIPTION, "run-1/provision") is not None


def test_writers_beyond_the_budget_get_successive_slots_one_refill_apart(clock):
    paced = pacer(clock, refill=2.0)
    paced.observe(SUBSCRIPTION, DEFAULT_RESERVE)

    delays = [paced.admit(SUBSCRIPTION, f"run-{number}/subscribe") for number in range(4)]

    assert delays == pytest.approx([0.5, 1.0, 1.5, 2.0])


def test_a_writer_back_at_its_slot_writes_and_one_back_early_is_told_the_rest(clock):
    paced = pacer(clock, refill=2.0)
    paced.observe(SUBSCRIPTION, DEFAULT_RESERVE)
    assert paced.admit(SUBSCRIPTION, "run-1/subscribe") == pytest.approx(0.5)
    assert paced.admit(SUBSCRIPTION, "run-2/subscribe") == pytest.approx(1.0)

    clock.now += 0.5
    assert paced.admit(SUBSCRIPTION, "run-2/subscribe") == pytest.approx(0.5)
    assert paced.admit(SUBSCRIPTION, "run-1/subscribe") is None
    clock.now += 0.5
    assert paced.admit(SUBSCRIPTION, "run-2/subscribe") is None


def test_a_newcomer_queues_behind_the_writers_already_slotted(clock):
    paced = pacer(clock, refill=1.0)
    paced.observe(SUBSCRIPTION, DEFAULT_RESERVE)
    paced.admit(SUBSCRIPTION, "run-1/subscribe")
    clock.now += 1.0

    # The token that refilled is run-1's: a newcomer does not take it.
    assert paced.admit(SUBSCRIPTION, "run-2/subscribe") == pytest.approx(1.0)
    assert paced.admit(SUBSCRIPTION, "run-1/subscribe") is None


def test_an_unclaimed_slot_is_given_up_after_its_grace(clock):
    paced = pacer(clock, refill=1.0)
    paced.observe(SUBSCRIPTION, DEFAULT_RESERVE)
    paced.admit(SUBSCRIPTION, "run-1/subscribe")  # a step that then went another way
    clock.now += 60

    assert paced.admit(SUBSCRIPTION, "run-2/subscribe") is None


def test_writes_still_on_their_way_count_against_what_arm_last_reported(clock):
    paced = pacer(clock)
    paced.observe(SUBSCRIPTION, 6)
    assert [paced.admit(SUBSCRIPTION, f"run-{number}/provision") for number in range(4)] == [None] * 4

    # The first of the four answers: ARM counted it, the other three are still in flight.
    paced.observe(SUBSCRIPTION, 5)

    assert paced.admit(SUBSCRIPTION, "run-9/provision") is not None


def test_arms_answer_corrects_the_estimate_when_others_spent_the_bucket(clock):
    paced = pacer(clock)
    paced.observe(SUBSCRIPTION, 150)
    assert paced.admit(SUBSCRIPTION, "run-1/provision") is None

    paced.observe(SUBSCRIPTION, 0)  # another instance spent it all meanwhile

    assert paced.admit(SUBSCRIPTION, "run-2/provision") is not None


def test_a_refused_write_spends_nothing_but_reports_the_bucket_empty(clock):
    paced = pacer(clock, refill=2.0)
    paced.observe(SUBSCRIPTION, 50)
    paced.admit(SUBSCRIPTION, "run-1/provision")

    paced.observe(SUBSCRIPTION, 0, spent=False)

    assert paced.admit(SUBSCRIPTION, "run-2/provision") == pytest.approx((DEFAULT_RESERVE + 2) / 2.0)


def test_the_refill_rate_is_learnt_from_successive_answers(clock):
    paced = pacer(clock, refill=0.5)
    paced.observe(SUBSCRIPTION, 100)  # a bucket seen fuller than it will be again: its capacity is at least 101
    paced.observe(SUBSCRIPTION, 10)
    for _ in range(4):
        clock.now += 1.0
        paced.admit(SUBSCRIPTION, "run/provision")
        # One write answered a second later: 4 refilled, 1 spent.
        paced.observe(SUBSCRIPTION, 13)
        paced.observe(SUBSCRIPTION, 10)

    paced.observe(SUBSCRIPTION, DEFAULT_RESERVE)
    delay = paced.admit(SUBSCRIPTION, "run-1/subscribe")

    # Learnt towards ~4 writes a second, far from the cautious 0.5 it started from (which would say 2 s).
    assert delay is not None
    assert delay < 0.6


def test_a_full_bucket_teaches_nothing_about_the_refill(clock):
    paced = pacer(clock, refill=2.0)
    for _ in range(5):
        paced.observe(SUBSCRIPTION, 199)
        clock.now += 1.0
    paced.observe(SUBSCRIPTION, DEFAULT_RESERVE)

    assert paced.admit(SUBSCRIPTION, "run-1/subscribe") == pytest.approx(0.5)


def test_a_bucket_that_filled_while_the_pacer_was_too_cautious_still_teaches_a_faster_refill(clock):
    paced = pacer(clock, refill=1.0)
    paced.observe(SUBSCRIPTION, 9)  # capacity 10
    for _ in range(4):
        clock.now += 1.0
        paced.admit(SUBSCRIPTION, "run/provision")
        # Full again a second after each write: at least 1 write refilled a second, perhaps more.
        paced.observe(SUBSCRIPTION, 9)
    for _ in range(2):
        clock.now += 1.0
        for _ in range(3):
            paced.admit(SUBSCRIPTION, "run/provision")
        # Three writes a second, and the bucket full again after each: the refill is at least 3 a second.
        for _ in range(3):
            paced.observe(SUBSCRIPTION, 9)

    paced.observe(SUBSCRIPTION, DEFAULT_RESERVE)
    delay = paced.admit(SUBSCRIPTION, "run-1/subscribe")

    # One write's refill at the cautious 1/s would be 1 s.
    assert delay is not None
    assert delay < 0.7


def test_a_newcomer_writes_now_when_the_bucket_holds_more_than_the_promised_slots_will_need(clock):
    paced = pacer(clock, refill=0.5)
    paced.observe(SUBSCRIPTION, 20)
    paced.observe(SUBSCRIPTION, DEFAULT_RESERVE)
    slots = [paced.admit(SUBSCRIPTION, f"run-{number}/provision") for number in range(4)]
    assert slots == pytest.approx([2.0, 4.0, 6.0, 8.0])
    clock.now += 1.5
    paced.observe(SUBSCRIPTION, DEFAULT_RESERVE + 4, spent=False)  # ARM has refilled more than the pacer thought

    # Four slots are promised, but they fall due 2 s apart and each is refilled for by then: spare writes now.
    assert paced.admit(SUBSCRIPTION, "run-9/provision") is None


def test_slots_promised_already_are_not_spent_by_newcomers(clock):
    paced = pacer(clock, refill=1.0)
    paced.observe(SUBSCRIPTION, DEFAULT_RESERVE + 1)
    assert paced.admit(SUBSCRIPTION, "run-1/provision") is None
    slotted = paced.admit(SUBSCRIPTION, "run-2/provision")

    assert slotted == pytest.approx(1.0)
    # Nothing refilled yet: a newcomer must not take the token run-2 was promised.
    assert paced.admit(SUBSCRIPTION, "run-3/provision") == pytest.approx(2.0)


def test_before_the_refill_is_measured_no_slot_is_promised_far_ahead(clock):
    paced = pacer(clock, refill=1.0)
    paced.observe(SUBSCRIPTION, DEFAULT_RESERVE)
    waits = [paced.admit(SUBSCRIPTION, f"run-{number}/subscribe") for number in range(12)]

    # Slots at the cautious 1/s up to the horizon; the rest are told to ask again then, holding no slot.
    assert waits[:8] == pytest.approx([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])
    assert waits[8:] == [UNMEASURED_HORIZON_SECONDS] * 4


def test_once_the_refill_is_measured_slots_reach_as_far_as_they_need(clock):
    paced = pacer(clock, refill=1.0)
    paced.observe(SUBSCRIPTION, 50)
    paced.observe(SUBSCRIPTION, DEFAULT_RESERVE)
    for remaining in (DEFAULT_RESERVE, DEFAULT_RESERVE + 1):  # one write refilled a second: measured
        clock.now += 1.0
        paced.observe(SUBSCRIPTION, remaining, spent=False)
    waits = [paced.admit(SUBSCRIPTION, f"run-{number}/subscribe") for number in range(12)]

    assert waits[-1] == pytest.approx(11.0)


def test_concurrent_writers_never_overspend_the_budget(clock):
    paced = pacer(clock)
    paced.observe(SUBSCRIPTION, 20)
    admitted: list[float | None] = []

    def ask(number: int) -> None:
        admitted.append(paced.admit(SUBSCRIPTION, f"run-{number}/provision"))

    threads = [threading.Thread(target=ask, args=(number,)) for number in range(60)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert admitted.count(None) == 20 - DEFAULT_RESERVE

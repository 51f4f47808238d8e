"""Key drift on its own cadence: which endpoints a scan compares with listKeys, and how (fingerprint, value once)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from shared.azure_errors import AzureCallError
from shared.hygiene.key_drift import MAX_RETRIES, DriftTally, DriftWindow
from shared.key_secrets import KEY_FINGERPRINT_TAG, key_fingerprint
from shared.ports import EndpointKeys

from .conftest import World
from .fakes import T0, WS_A, endpoint

DAY = timedelta(hours=24)
IDS = [f"{WS_A}/serverlessEndpoints/ep-{number}" for number in range(200)]


def window(start_hours: float | None, end_hours: float, *, interval: timedelta = DAY, **kwargs) -> DriftWindow:
    start = None if start_hours is None else T0 + timedelta(hours=start_hours)
    return DriftWindow(start, T0 + timedelta(hours=end_hours), interval, **kwargs)


def test_without_an_earlier_window_or_after_a_whole_interval_every_endpoint_is_due():
    assert all(window(None, 0).due(item) for item in IDS)
    assert all(window(0, 24).due(item) for item in IDS)
    assert all(window(0, 0.1, interval=timedelta(0)).due(item) for item in IDS), "0: every scan"


def test_scans_across_one_interval_check_every_endpoint_exactly_once_spread_over_them():
    per_scan = [sum(window(hours, hours + 3).due(item) for item in IDS) for hours in range(0, 24, 3)]
    checks = Counter(item for hours in range(0, 24, 3) for item in IDS if window(hours, hours + 3).due(item))

    assert set(checks.values()) == {1}
    assert len(checks) == len(IDS)
    assert max(per_scan) < len(IDS) / 2, per_scan


def test_a_window_left_open_by_a_scan_that_never_reported_is_covered_by_the_next():
    skipped = {item for item in IDS if window(3, 6).due(item)}

    assert skipped <= {item for item in IDS if window(3, 9).due(item)}
    assert not any(window(6, 6).due(item) for item in IDS), "an empty window checks nothing"


def test_the_window_follows_the_previous_report_and_repeats_checks_that_failed():
    previous = {"keyDrift": {"checkedUntil": (T0 + timedelta(hours=1)).isoformat(), "retry": [IDS[0].upper()]}}

    following = DriftWindow.after(previous, now=T0 + timedelta(hours=1), interval=DAY)

    assert following.start == T0 + timedelta(hours=1)
    assert following.due(IDS[0])
    assert not following.due(IDS[1])
    assert DriftWindow.after(None, now=T0, interval=DAY).start is None


def test_too_many_failures_to_list_leave_the_window_where_it_was():
    tally = DriftTally(window(1, 2))
    for item in IDS[: MAX_RETRIES + 1]:
        tally.could_not_check(item)

    assert tally.as_report()["checkedUntil"] == (T0 + timedelta(hours=1)).isoformat()
    assert tally.as_report()["retry"] == []


def many_endpoints(world: World, count: int = 20, *, fingerprinted: bool = True) -> None:
    for number in range(count):
        item = endpoint(WS_A, f"ep-{number}")
        world.ml.add(WS_A, item)
        world.secrets.put_for(WS_A, item, world.ml.keys[item.id.lower()], fingerprinted=fingerprinted)


def test_ordinary_scans_read_no_key_and_no_value_and_each_endpoint_is_checked_once_per_interval(world: World):
    many_endpoints(world)
    first = world.scan(workspaces=(WS_A,))
    assert (len(world.ml.key_reads), world.secrets.value_reads) == (20, [])
    assert first["keyDrift"]["comparedBy"] == {"fingerprint": 40, "value": 0, "tagged": 0}

    world.ml.key_reads.clear()
    per_scan = []
    for _ in range(8):
        world.clock.advance(hours=3)
        before = len(world.ml.key_reads)
        world.scan(workspaces=(WS_A,))
        per_scan.append(len(world.ml.key_reads) - before)

    assert Counter(world.ml.key_reads) == Counter({f"ep-{number}": 1 for number in range(20)})
    assert max(per_scan) < 20
    assert world.secrets.value_reads == []
    assert world.findings() == []


def test_a_key_regenerated_outside_the_broker_is_found_within_the_interval_and_its_fix_on_the_next_scan(
    world: World,
):
    many_endpoints(world, 1)
    world.scan(workspaces=(WS_A,))
    key = f"{WS_A}/serverlessEndpoints/ep-0".lower()
    world.ml.keys[key] = EndpointKeys("regenerated-in-the-portal", world.ml.keys[key].secondary)

    for _ in range(8):
        world.clock.advance(hours=3)
        world.scan(workspaces=(WS_A,))
    [finding] = world.findings(rule="secrets-missing")
    assert finding.state == "open"
    assert finding.evidence["mismatchedSecrets"][0].endswith("-primary")

    # The broker's repair writes the key again, fingerprinted; the open finding is looked at on the very next scan.
    world.secrets.put_for(WS_A, endpoint(WS_A, "ep-0"), world.ml.keys[key])
    world.clock.advance(minutes=1)
    world.scan(workspaces=(WS_A,))

    assert [record.state for record in world.findings(rule="secrets-missing")] == ["resolved"]


def test_secrets_without_a_fingerprint_are_read_once_then_tagged_in_place(world: World):
    many_endpoints(world, 2, fingerprinted=False)
    versions = list(world.secrets.versions)

    report = world.scan(workspaces=(WS_A,))

    assert len(world.secrets.value_reads) == 4
    assert report["keyDrift"]["comparedBy"]["tagged"] == 4
    assert world.secrets.versions == versions, "tagging adds no version"
    for stored, value in world.secrets.secrets.values():
        assert stored.tags[KEY_FINGERPRINT_TAG] == key_fingerprint(value)
    world.secrets.value_reads.clear()
    world.clock.advance(hours=25)
    world.scan(workspaces=(WS_A,))
    assert world.secrets.value_reads == []
    assert world.findings() == []


def test_a_version_written_without_a_fingerprint_is_checked_on_the_next_scan_and_never_tagged_if_wrong(
    world: World,
):
    many_endpoints(world, 1)
    world.scan(workspaces=(WS_A,))
    name = next(name for name in world.secrets.secrets if name.endswith("primary"))
    world.secrets.put(name, "pasted-by-hand", {"workspace": WS_A, "endpoint": "ep-0"})
    world.ml.key_reads.clear()

    world.clock.advance(minutes=1)
    world.scan(workspaces=(WS_A,))

    assert world.ml.key_reads == ["ep-0"]
    [finding] = world.findings(rule="secrets-missing")
    assert finding.evidence["mismatchedSecrets"] == [world.secrets.secrets[name][0].name]
    assert KEY_FINGERPRINT_TAG not in world.secrets.secrets[name][0].tags
    assert "pasted-by-hand" not in str(world.table.rows) + str(world.queue.messages)


def test_a_check_that_failed_is_repeated_on_the_next_scan(world: World):
    many_endpoints(world, 1)
    key = f"{WS_A}/serverlessEndpoints/ep-0".lower()
    keys = world.ml.keys.pop(key)  # listKeys fails
    report = world.scan(workspaces=(WS_A,))
    assert report["keyDrift"]["retry"] == [f"{WS_A}/serverlessEndpoints/ep-0"]
    world.ml.keys[key] = keys
    world.ml.key_reads.clear()

    world.clock.advance(minutes=1)
    report = world.scan(workspaces=(WS_A,))

    assert world.ml.key_reads == ["ep-0"]
    assert report["keyDrift"]["retry"] == []


def test_a_fingerprint_that_cannot_be_written_leaves_the_check_standing(world: World, monkeypatch):
    many_endpoints(world, 1, fingerprinted=False)

    def refuse(*_: object, **__: object) -> None:
        raise AzureCallError(403, "Forbidden", "no update permission")

    monkeypatch.setattr(world.secrets, "set_version_tags", refuse)
    report = world.scan(workspaces=(WS_A,))

    assert report["keyDrift"]["comparedBy"] == {"fingerprint": 0, "value": 2, "tagged": 0}
    assert world.findings() == []

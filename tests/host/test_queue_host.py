"""Queue trigger rules, through the real host subprocess running tests/host/apps/queue_app on Azurite.

The app's host.json: batchSize 2, newBatchThreshold 1, maxDequeueCount 3, visibilityTimeout 1 s, polling <= 1 s.
"""

import itertools
import json
import time

import pytest

from .helpers import APPS, b64, call, copy_app, message_count, open_queue, receive_all, running_host, wait_for_markers

MASTER_KEY = "queue-master-key"
LEASE_SECONDS = 2


def _env(azurite, marker_dir, prefix):
    return {
        "AzureWebJobsStorage": azurite.connection_string,
        "MARKER_DIR": str(marker_dir),
        "QUEUE_PREFIX": prefix,
        "DEVSTACK_HOST_MASTER_KEY": MASTER_KEY,
    }


@pytest.fixture(scope="module")
def host(azurite, marker_dir, queue_prefix, tmp_path_factory):
    env = _env(azurite, marker_dir, queue_prefix)
    lease = ["--queue-lease-seconds", str(LEASE_SECONDS)]
    with running_host(
        APPS / "queue_app", env=env, log_dir=tmp_path_factory.mktemp("queue-host"), extra_args=lease
    ) as running:
        yield running


@pytest.fixture
def queue(azurite, queue_prefix):
    return lambda suffix: open_queue(azurite.connection_string, f"{queue_prefix}-{suffix}")


def _eventually_empty(client, timeout=5.0):
    deadline = time.monotonic() + timeout
    while message_count(client) and time.monotonic() < deadline:
        time.sleep(0.05)
    return message_count(client) == 0


def test_a_base64_message_arrives_decoded_with_its_metadata(host, queue, marker_dir):
    record = queue("record")
    sent = record.send_message(b64("héllo queue"))

    [marker] = wait_for_markers(marker_dir, "record", 1, where=lambda marker: marker["id"] == sent.id)
    assert marker["body"] == "héllo queue"
    assert marker["dequeue_count"] == 1
    assert marker["has_pop_receipt"]
    assert marker["has_times"]
    assert _eventually_empty(record)


def test_an_undecodable_message_goes_straight_to_poison_without_an_invocation(host, queue):
    record = queue("record")
    sent = record.send_message("not base64!")

    assert receive_all(queue("record-poison"), 1) == [b64("not base64!")]
    assert _eventually_empty(record)
    assert not [invocation for invocation in host.invocations() if invocation.get("messageId") == sent.id]


def test_a_failure_comes_back_after_the_visibility_timeout_with_a_higher_dequeue_count(host, queue, marker_dir):
    queue("flaky").send_message(b64("try me"))

    markers = wait_for_markers(marker_dir, "flaky", 3)
    assert [marker["dequeue_count"] for marker in markers] == [1, 2, 3]
    gaps = [later["at"] - earlier["at"] for earlier, later in itertools.pairwise(markers)]
    assert all(gap >= 0.9 for gap in gaps), gaps
    outcomes = host.wait_for_invocations(lambda record: record["function"] == "flaky", count=3)
    assert [record["outcome"] for record in outcomes] == ["Failed", "Failed", "Succeeded"]
    assert _eventually_empty(queue("flaky"))
    assert message_count(queue("flaky-poison")) == 0


def test_poison_after_max_dequeue_count_and_no_outputs_from_failed_runs(host, queue, marker_dir):
    queue("fanout").send_message(b64("fail-1"))

    assert receive_all(queue("fanout-poison"), 1, timeout=15) == [b64("fail-1")]
    attempts = wait_for_markers(marker_dir, "fan_out", 3, where=lambda marker: marker["body"] == "fail-1")
    assert [attempt["dequeue_count"] for attempt in attempts] == [1, 2, 3]
    assert message_count(queue("fanout-out")) == 0
    assert _eventually_empty(queue("fanout"))


def test_outputs_are_written_after_success_in_the_configured_encoding(host, queue):
    queue("fanout").send_message(b64("ok-1"))

    assert sorted(receive_all(queue("fanout-out"), 2)) == [b64("ok-1-a"), b64("ok-1-b")]


def test_admin_invoke_runs_a_queue_function_with_the_input_as_message(host, marker_dir):
    url = f"{host.url}/admin/functions/record"

    assert call(url, "POST", body=b'{"input": "from admin"}').status == 401
    assert call(url, "POST", headers={"x-functions-key": MASTER_KEY}, body=b'{"input": "from admin"}').status == 202
    [marker] = wait_for_markers(marker_dir, "record", 1, where=lambda marker: marker["body"] == "from admin")
    assert marker["dequeue_count"] == 1


def test_an_async_queue_function_runs_on_the_event_loop(host, queue, marker_dir):
    queue("async").send_message(b64("async body"))

    [marker] = wait_for_markers(marker_dir, "async_record", 1)
    assert marker == {"at": marker["at"], "body": "async body", "on_loop_thread": True}


def test_at_most_batch_size_plus_new_batch_threshold_run_at_once(host, queue, marker_dir):
    # One long message, then short ones: a new batch of 2 is fetched whenever running drops to 1 or fewer.
    probe = queue("concurrency")
    for seconds in ["1.2"] + ["0.2"] * 7:
        probe.send_message(b64(seconds))

    markers = wait_for_markers(marker_dir, "concurrency_probe", 8, timeout=15)
    assert max(marker["peak"] for marker in markers) == 3


def test_a_long_run_keeps_its_message_leased(host, queue, marker_dir):
    # The lease is 2 s; the run takes 3.5 s, so without renewal the message would be delivered again.
    slow = queue("slow")
    slow.send_message(b64("3.5"))

    wait_for_markers(marker_dir, "slow", 1, where=lambda marker: marker["event"] == "finished", timeout=15)
    assert _eventually_empty(slow)
    starts = [marker for marker in wait_for_markers(marker_dir, "slow", 0) if marker["event"] == "started"]
    assert [start["dequeue_count"] for start in starts] == [1]


def test_message_encoding_none_passes_text_through(azurite, queue_prefix, tmp_path_factory):
    prefix, markers = f"{queue_prefix}n", tmp_path_factory.mktemp("none-markers")
    queues = json.loads((APPS / "queue_app" / "host.json").read_text())
    queues["extensions"]["queues"]["messageEncoding"] = "none"
    app_dir = copy_app("queue_app", tmp_path_factory.mktemp("none-app"), host_json=queues)
    with running_host(app_dir, env=_env(azurite, markers, prefix), log_dir=tmp_path_factory.mktemp("none-host")):
        open_queue(azurite.connection_string, f"{prefix}-record").send_message("plain text, not base64!")
        open_queue(azurite.connection_string, f"{prefix}-fanout").send_message("ok")

        [marker] = wait_for_markers(markers, "record", 1)
        assert marker["body"] == "plain text, not base64!"
        outputs = receive_all(open_queue(azurite.connection_string, f"{prefix}-fanout-out"), 2)
        assert sorted(outputs) == ["ok-a", "ok-b"]


def test_sigterm_lets_the_running_invocation_finish_then_exits_0(azurite, queue_prefix, tmp_path_factory):
    prefix, markers = f"{queue_prefix}s", tmp_path_factory.mktemp("stop-markers")
    with running_host(
        APPS / "queue_app", env=_env(azurite, markers, prefix), log_dir=tmp_path_factory.mktemp("stop-host")
    ) as host:
        slow = open_queue(azurite.connection_string, f"{prefix}-slow")
        slow.send_message(b64("1.5"))
        wait_for_markers(markers, "slow", 1)
        stop_requested = time.time()

        assert host.stop() == 0

    runs = wait_for_markers(markers, "slow", 2, timeout=0)
    assert [run["event"] for run in runs] == ["started", "finished"]
    assert runs[1]["at"] > stop_requested
    assert [record["outcome"] for record in host.invocations()] == ["Succeeded"]
    assert "host stopped" in host.log_text()
    assert message_count(slow) == 0


def test_a_message_whose_host_died_mid_run_comes_back_when_its_lease_ends(azurite, queue_prefix, tmp_path_factory):
    prefix, markers = f"{queue_prefix}k", tmp_path_factory.mktemp("crash-markers")
    env, lease = _env(azurite, markers, prefix), ["--queue-lease-seconds", str(LEASE_SECONDS)]
    with running_host(
        APPS / "queue_app", env=env, log_dir=tmp_path_factory.mktemp("crashed"), extra_args=lease
    ) as host:
        open_queue(azurite.connection_string, f"{prefix}-slow").send_message(b64("30"))
        wait_for_markers(markers, "slow", 1)
        host.kill()

    with running_host(APPS / "queue_app", env=env, log_dir=tmp_path_factory.mktemp("restarted"), extra_args=lease):
        runs = wait_for_markers(markers, "slow", 3)

    assert [(run["event"], run["dequeue_count"]) for run in runs] == [
        ("started", 1), ("started", 2), ("finished", 2)
    ]  # fmt: skip


def test_a_message_already_past_max_dequeue_count_goes_to_poison_without_an_invocation(
    azurite, queue_prefix, tmp_path_factory
):
    prefix, markers = f"{queue_prefix}w", tmp_path_factory.mktemp("worn-markers")
    record = open_queue(azurite.connection_string, f"{prefix}-record")
    record.send_message(b64("worn out"))
    for _ in range(3):  # maxDequeueCount: three dequeues whose runs never completed
        received = next(iter(record.receive_messages(visibility_timeout=30)))
        record.update_message(received, visibility_timeout=0)

    with running_host(APPS / "queue_app", env=_env(azurite, markers, prefix), log_dir=tmp_path_factory.mktemp("worn")):
        poisoned = receive_all(open_queue(azurite.connection_string, f"{prefix}-record-poison"), 1)

    assert poisoned == [b64("worn out")]
    assert wait_for_markers(markers, "record", 0, timeout=0) == []

"""Queue sample app for the host tests; each function appends JSON lines to $MARKER_DIR/<function>.jsonl."""

import asyncio
import json
import os
import threading
import time
from pathlib import Path

import azure.functions as func

app = func.FunctionApp()
_marker_lock = threading.Lock()
_concurrency_lock = threading.Lock()
_running = {"now": 0, "peak": 0}


def _mark(function: str, **fields: object) -> None:
    with _marker_lock, (Path(os.environ["MARKER_DIR"]) / f"{function}.jsonl").open("a", encoding="utf-8") as file:
        file.write(json.dumps({"at": time.time(), **fields}) + "\n")


@app.queue_trigger(arg_name="msg", queue_name="%QUEUE_PREFIX%-record", connection="AzureWebJobsStorage")
def record(msg: func.QueueMessage) -> None:
    _mark(
        "record",
        id=msg.id,
        body=msg.get_body().decode("utf-8"),
        dequeue_count=msg.dequeue_count,
        has_pop_receipt=bool(msg.pop_receipt),
        has_times=all((msg.insertion_time, msg.expiration_time, msg.time_next_visible)),
    )


@app.queue_trigger(arg_name="msg", queue_name="%QUEUE_PREFIX%-flaky", connection="AzureWebJobsStorage")
def flaky(msg: func.QueueMessage) -> None:
    _mark("flaky", dequeue_count=msg.dequeue_count)
    if msg.dequeue_count < 3:
        raise RuntimeError(f"attempt {msg.dequeue_count} fails")


@app.queue_trigger(arg_name="msg", queue_name="%QUEUE_PREFIX%-fanout", connection="AzureWebJobsStorage")
@app.queue_output(arg_name="out", queue_name="%QUEUE_PREFIX%-fanout-out", connection="AzureWebJobsStorage")
def fan_out(msg: func.QueueMessage, out: func.Out[list[str]]) -> None:
    body = msg.get_body().decode("utf-8")
    out.set([f"{body}-a", f"{body}-b"])
    _mark("fan_out", body=body, dequeue_count=msg.dequeue_count)
    if body.startswith("fail"):
        raise RuntimeError("fails after setting its outputs")


@app.queue_trigger(arg_name="msg", queue_name="%QUEUE_PREFIX%-async", connection="AzureWebJobsStorage")
async def async_record(msg: func.QueueMessage) -> None:
    await asyncio.sleep(0)
    on_loop_thread = threading.current_thread() is threading.main_thread()
    _mark("async_record", body=msg.get_body().decode("utf-8"), on_loop_thread=on_loop_thread)


@app.queue_trigger(arg_name="msg", queue_name="%QUEUE_PREFIX%-slow", connection="AzureWebJobsStorage")
def slow(msg: func.QueueMessage) -> None:
    """Sleeps for the number of seconds in the message on its first delivery, so a redelivery ends quickly."""
    _mark("slow", event="started", dequeue_count=msg.dequeue_count)
    if msg.dequeue_count == 1:
        time.sleep(float(msg.get_body()))
    _mark("slow", event="finished", dequeue_count=msg.dequeue_count)


@app.queue_trigger(arg_name="msg", queue_name="%QUEUE_PREFIX%-concurrency", connection="AzureWebJobsStorage")
def concurrency_probe(msg: func.QueueMessage) -> None:
    """Sleeps for the seconds in the message and records the most invocations seen running at once."""
    with _concurrency_lock:
        _running["now"] += 1
        _running["peak"] = max(_running["peak"], _running["now"])
    try:
        time.sleep(float(msg.get_body()))
    finally:
        with _concurrency_lock:
            _running["now"] -= 1
    _mark("concurrency_probe", peak=_running["peak"])

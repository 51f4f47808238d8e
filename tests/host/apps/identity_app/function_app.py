"""Identity-based storage sample app: the default connection (AzureWebJobsStorage) is given only as
AzureWebJobsStorage__queueServiceUri + __credential + __clientId; LegacyStorage is a connection string.
Each function appends JSON lines to $MARKER_DIR/<function>.jsonl."""

import json
import os
import threading
import time
from pathlib import Path

import azure.functions as func

app = func.FunctionApp()
_marker_lock = threading.Lock()


def _mark(function: str, **fields: object) -> None:
    with _marker_lock, (Path(os.environ["MARKER_DIR"]) / f"{function}.jsonl").open("a", encoding="utf-8") as file:
        file.write(json.dumps({"at": time.time(), **fields}) + "\n")


@app.queue_trigger(arg_name="msg", queue_name="%QUEUE_PREFIX%-record", connection="AzureWebJobsStorage")
def record(msg: func.QueueMessage) -> None:
    _mark("record", id=msg.id, body=msg.get_body().decode("utf-8"), dequeue_count=msg.dequeue_count)


@app.queue_trigger(arg_name="msg", queue_name="%QUEUE_PREFIX%-relay", connection="AzureWebJobsStorage")
@app.queue_output(arg_name="same", queue_name="%QUEUE_PREFIX%-relayed", connection="AzureWebJobsStorage")
@app.queue_output(arg_name="legacy", queue_name="%QUEUE_PREFIX%-legacy", connection="LegacyStorage")
def relay(msg: func.QueueMessage, same: func.Out[str], legacy: func.Out[str]) -> None:
    """Writes the body to a queue on the same (identity-based) account and to one on a connection-string account."""
    body = msg.get_body().decode("utf-8")
    same.set(f"{body} (identity)")
    legacy.set(f"{body} (connection string)")


@app.queue_trigger(arg_name="msg", queue_name="%QUEUE_PREFIX%-doomed", connection="")  # "": the default
def doomed(msg: func.QueueMessage) -> None:
    _mark("doomed", dequeue_count=msg.dequeue_count)
    raise RuntimeError(f"attempt {msg.dequeue_count} fails")

"""Timer sample app for the host tests; each function appends JSON lines to $MARKER_DIR/<function>.jsonl."""

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
        file.write(json.dumps(fields) + "\n")


@app.timer_trigger(arg_name="timer", schedule="*/2 * * * * *")
def every_two_seconds(timer: func.TimerRequest) -> None:
    _mark("every_two_seconds", at=time.time(), past_due=timer.past_due)


@app.timer_trigger(arg_name="timer", schedule="%NEW_YEAR_SCHEDULE%", run_on_startup=True)
def on_startup(timer: func.TimerRequest) -> None:
    _mark("on_startup", at=time.time(), past_due=timer.past_due, next=timer.schedule_status.get("Next"))


@app.timer_trigger(arg_name="timer", schedule="* * * * * *")
def slower_than_its_schedule(timer: func.TimerRequest) -> None:
    """Every second, but each run takes 1.5 s, so the next occurrence is always missed."""
    started = time.time()
    time.sleep(1.5)
    _mark("slower_than_its_schedule", started=started, finished=time.time(), past_due=timer.past_due)


@app.timer_trigger(arg_name="timer", schedule="0 0 0 1 Jan *")
def on_demand(timer: func.TimerRequest) -> None:
    _mark("on_demand", at=time.time(), past_due=timer.past_due)

"""DataMasqueRunTrigger.run() against scripted HTTP answers: riding out transient errors, fail-closed
events. (The trigger talks aiohttp, so the answers come from ``_scripted.ScriptedApi``, a real local
HTTP server, rather than requests-mock.)"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_datamasque.emulator import DataMasqueEmulator
from airflow_provider_datamasque.triggers.runs import DataMasqueRunTrigger

from ._harness import CONN_ENV, count_logged, run_trigger, start_run, wait_run_status
from ._scripted import ScriptedApi

RUN = "/api/runs/1/"
LOG = "/api/runs/1/log/"
#: The connection's read timeout in these tests; a ``delay`` longer than it is a read timeout.
READ_TIMEOUT = 1.0
ENTRIES = [
    {"timestamp": "2026-01-01T00:00:00Z", "log_level": 20, "message": "Run 1 queued."},
    {"timestamp": "2026-01-01T00:00:01Z", "log_level": 20, "message": "Masked table customers: 5 rows"},
    {"timestamp": "2026-01-01T00:00:02Z", "log_level": 20, "message": "Run finished with status finished"},
]
LINES = [f"[DataMasque {e['timestamp']}] INFO: {e['message']}" for e in ENTRIES]


def run_body(status: str) -> dict[str, Any]:
    return {
        "id": 1,
        "name": "nightly",
        "status": status,
        "start_time": "2026-01-01T00:00:00Z",
        "end_time": "2026-01-01T00:00:02Z" if status in ("finished", "failed", "cancelled") else None,
        "error_message": "boom" if status == "failed" else None,
    }


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedApi]:
    """Scripted answers behind datamasque_default; the client itself does not retry (max_retries=0),
    so every transient error reaches the trigger."""
    server = ScriptedApi()
    conn = {
        "conn_type": "datamasque",
        "host": server.url,
        "login": "admin",
        "password": "pw-123456",
        "extra": {"max_retries": 0, "timeout": READ_TIMEOUT},
    }
    monkeypatch.setenv(CONN_ENV, json.dumps(conn))
    server.post("/api/auth/token/login/", json={"key": "t" * 40})
    try:
        yield server
    finally:
        server.close()


def trigger(**kwargs: Any) -> DataMasqueRunTrigger:
    return DataMasqueRunTrigger(**({"run_id": 1, "poll_interval": 0.01} | kwargs))


def output(capfd: pytest.CaptureFixture[str]) -> str:
    captured = capfd.readouterr()
    return captured.out + captured.err


def test_rides_out_a_502_then_succeeds(api: ScriptedApi, capfd: pytest.CaptureFixture[str]) -> None:
    api.get(
        RUN,
        [
            {"status_code": 502, "text": "<html><title>502 Bad Gateway</title></html>"},
            {"json": run_body("finished")},
        ],
    )
    api.get(LOG, content=json.dumps(ENTRIES).encode())

    event = run_trigger(trigger(task_try=2))

    assert event["status"] == "success"
    assert event["run_id"] == 1 and event["run_status"] == "finished"
    assert event["task_try"] == 2, "the event names the try that deferred"
    assert event["monitor"]["cursor"]["count"] == 3
    assert event["monitor"]["level_counts"] == {"INFO": 3}
    text = output(capfd)
    assert "DataMasque unreachable while watching run 1" in text
    assert set(count_logged(text, LINES).values()) == {1}
    assert [r.method for r in api.request_history].count("GET") == 3


@pytest.mark.parametrize(
    "failure",
    [
        {"status_code": 503, "json": {"detail": "Service temporarily unavailable"}},
        {"status_code": 504, "text": "gateway timeout"},
        {"status_code": 500, "json": {"detail": "A server error occurred."}},
        {"status_code": 429, "json": {"detail": "throttled"}, "headers": {"Retry-After": "0"}},
        {"drop": True},  # connection reset, no answer
        {"delay": READ_TIMEOUT + 0.6, "json": {"detail": "too late"}},  # read timeout
    ],
)
def test_rides_out_transient_failures(api: ScriptedApi, failure: dict[str, Any]) -> None:
    api.get(RUN, [failure, failure, {"json": run_body("running")}, {"json": run_body("finished")}])
    api.get(LOG, content=json.dumps(ENTRIES).encode())
    event = run_trigger(trigger())
    assert event["status"] == "success"
    assert event["monitor"]["cursor"]["count"] == 3


def test_log_read_failing_after_terminal_status_is_retried_before_firing(
    api: ScriptedApi, capfd: pytest.CaptureFixture[str]
) -> None:
    api.get(RUN, json=run_body("finished"))
    api.get(
        LOG, [{"status_code": 503, "json": {"detail": "busy"}}, {"content": json.dumps(ENTRIES).encode()}]
    )
    event = run_trigger(trigger())
    assert event["status"] == "success"
    assert set(count_logged(output(capfd), LINES).values()) == {1}


@pytest.mark.parametrize(
    ("status", "event_status"),
    [("failed", "failed"), ("cancelled", "cancelled"), ("finished_with_warnings", "success")],
)
def test_terminal_statuses_map_to_events(api: ScriptedApi, status: str, event_status: str) -> None:
    api.get(RUN, json=run_body(status))
    api.get(LOG, content=json.dumps(ENTRIES).encode())
    event = run_trigger(trigger())
    assert event["status"] == event_status
    assert event["run_status"] == status
    if status == "failed":
        assert "ended failed" in event["message"] and "Error: boom" in event["message"]


def test_unknown_status_never_counts_as_success(api: ScriptedApi) -> None:
    api.get(RUN, json=run_body("paused_for_lunch"))
    api.get(LOG, content=b"[]")
    event = run_trigger(trigger(end_time=time.time() + 0.1))
    assert event["status"] == "timeout"


@pytest.mark.parametrize(
    ("response", "match"),
    [
        ({"status_code": 404, "json": {"detail": "Not found."}}, "not found"),
        ({"status_code": 403, "json": {"detail": "Forbidden"}}, "failed"),
        ({"status_code": 400, "json": {"detail": "bad"}}, "failed"),
    ],
)
def test_non_transient_errors_end_with_an_error_event(
    api: ScriptedApi, response: dict[str, Any], match: str
) -> None:
    api.get(RUN, **response)
    event = run_trigger(trigger())
    assert event["status"] == "error"
    assert match in event["message"]
    assert api.call_count <= 4


def test_end_time_gives_a_timeout_event(api: ScriptedApi) -> None:
    api.get(RUN, json=run_body("running"))
    api.get(LOG, content=json.dumps(ENTRIES[:1]).encode())
    started = time.monotonic()
    event = run_trigger(trigger(poll_interval=5, end_time=time.time() + 0.3))
    assert time.monotonic() - started < 3
    assert event["status"] == "timeout"
    assert event["run_status"] == "running"
    assert event["monitor"]["cursor"]["count"] == 1


def test_outage_until_end_time_still_times_out(api: ScriptedApi) -> None:
    api.get(RUN, status_code=502, text="<html>down</html>")
    event = run_trigger(trigger(end_time=time.time() + 0.3))
    assert event["status"] == "timeout"
    assert not event["run_status"]  # never read


def test_bad_connection_gives_an_error_event(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CONN_ENV, json.dumps({"conn_type": "datamasque", "host": "", "login": "a"}))
    event = run_trigger(trigger(task_try=4))
    assert event["status"] == "error"
    assert "Cannot watch DataMasque run 1" in event["message"]
    assert event["task_try"] == 4


def test_resumed_trigger_does_not_relog_lines(
    emu: DataMasqueEmulator, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(CONN_ENV, emu.connection_json())
    run_id = start_run("[emulator:log_lines=3]")
    wait_run_status(emu, run_id, ("finished",))
    first = run_trigger(trigger(run_id=run_id))
    capfd.readouterr()
    second = run_trigger(trigger(run_id=run_id, monitor_state=first["monitor"]))
    assert second["status"] == "success"
    assert second["monitor"]["cursor"] == first["monitor"]["cursor"]
    assert "[DataMasque " not in output(capfd)


def _wake_order(n: int, read: Any, cancel: int | None = None) -> tuple[list[Any], list[int]]:
    """Start ``n`` triggers' connection reads together; return each outcome and the loop turn it woke in."""
    import asyncio

    from airflow_provider_datamasque.triggers import runs as trigger_module

    async def main() -> tuple[list[Any], list[int]]:
        turn = 0
        stop = False

        async def count_turns() -> None:
            nonlocal turn
            while not stop:
                await asyncio.sleep(0)
                turn += 1

        counter = asyncio.create_task(count_turns())
        woke: list[int] = [-1] * n

        async def one(index: int) -> Any:
            trigger = DataMasqueRunTrigger(index, poll_interval=1)
            try:
                result = await trigger._config()
            except BaseException as exc:
                result = exc
            woke[index] = turn
            return result

        tasks = [asyncio.create_task(one(i)) for i in range(n)]
        await asyncio.sleep(0)
        if cancel is not None:
            tasks[cancel].cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        stop = True
        await counter
        assert not any(trigger_module._reads.values())  # nothing kept once the read is done
        return list(outcomes), woke

    import unittest.mock

    with unittest.mock.patch.object(DataMasqueRunTrigger, "_read_config", read):
        return asyncio.run(main())


def test_triggers_sharing_a_connection_read_wake_a_batch_per_loop_turn() -> None:
    """A thousand triggers picked up together share one connection read, and are woken
    WAKE_BATCH per event-loop turn so setting them all up never holds the loop in one go."""
    from airflow_provider_datamasque.hooks.client import ClientConfig
    from airflow_provider_datamasque.triggers.runs import WAKE_BATCH

    reads: list[int] = []
    config = ClientConfig(base_url="http://dm.test", api_token="t0ken-value")

    def read(self: DataMasqueRunTrigger) -> ClientConfig:
        reads.append(self.run_id)
        time.sleep(0.05)  # long enough for every trigger to be waiting when it ends
        return config

    n = 10 * WAKE_BATCH + 3
    outcomes, woke = _wake_order(n, read, cancel=7)
    assert len(reads) == 1
    assert isinstance(outcomes[7], BaseException)  # the cancelled one
    assert all(outcome is config for i, outcome in enumerate(outcomes) if i != 7)
    per_turn: dict[int, int] = {}
    for i, turn in enumerate(woke):
        if i != 7:
            per_turn[turn] = per_turn.get(turn, 0) + 1
    assert max(per_turn.values()) <= WAKE_BATCH
    assert len(per_turn) >= (n - 1) // WAKE_BATCH


def test_a_failed_shared_connection_read_reaches_every_waiting_trigger() -> None:
    from airflow_provider_datamasque.hooks.errors import DataMasqueConfigError

    def read(self: DataMasqueRunTrigger) -> Any:
        time.sleep(0.05)
        raise DataMasqueConfigError("The connection 'datamasque_default' is not defined.")

    outcomes, _ = _wake_order(60, read)
    assert all(isinstance(outcome, DataMasqueConfigError) for outcome in outcomes)

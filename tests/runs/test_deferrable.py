"""Deferrable waiting: the operator through ``dag.test()``, the trigger's serialization, and
trigger events that must be validated fail-closed."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from airflow_provider_datamasque.hooks.errors import DataMasqueError, DataMasqueRunError
from airflow_provider_datamasque.monitor import validate_event
from airflow_provider_datamasque.operators.runs import DataMasqueRunOperator
from airflow_provider_datamasque.triggers.runs import DataMasqueRunTrigger

from ._harness import (
    DataMasqueEmulator,
    assert_lines_once,
    make_context,
    mask_task_source,
    run_operator,
    start_run,
    ti_states,
    wait_run_status,
    xcom,
)


def output(capfd: pytest.CaptureFixture[str]) -> str:
    captured = capfd.readouterr()
    return captured.out + captured.err


def test_deferrable_operator_in_a_dag_run(
    dm_conn: DataMasqueEmulator,
    dag_factory: Callable[..., Any],
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    triggered: list[int] = []
    real_run = DataMasqueRunTrigger.run

    async def spy_run(self: DataMasqueRunTrigger) -> Any:
        triggered.append(self.run_id)
        async for event in real_run(self):
            yield event

    monkeypatch.setattr(DataMasqueRunTrigger, "run", spy_run)
    dag = dag_factory(
        [
            mask_task_source(
                run_name="deferred [emulator:log_lines=3]",
                poll_interval=0.3,
                deferrable=True,
            )
        ]
    )
    dag_run = dag.test()
    text = output(capfd)

    assert str(dag_run.state) in ("success", "DagRunState.SUCCESS")
    assert ti_states(dag_run) == {"mask": "success"}
    assert xcom(dag_run, "mask") == 1
    assert xcom(dag_run, "mask", "run_id") == 1
    assert xcom(dag_run, "mask", "run_url").startswith(dm_conn.url)
    assert triggered == [1]  # waited in the trigger
    assert dm_conn.runs_created == 1
    assert_lines_once(text, dm_conn, 1)
    assert re.search(r"DataMasque run 1 \(deferred .*\) finished in [\d.]+s; 8 log lines \(8 INFO\)", text)


def test_deferrable_execution_timeout_cancels_the_run(
    dm_conn: DataMasqueEmulator, dag_factory: Callable[..., Any], capfd: pytest.CaptureFixture[str]
) -> None:
    dag = dag_factory(
        [
            mask_task_source(
                run_name="slow [emulator:long]",
                poll_interval=0.3,
                deferrable=True,
                execution_timeout=timedelta(seconds=3),
            )
        ]
    )
    started = time.monotonic()
    dag_run = dag.test()
    text = output(capfd)

    assert time.monotonic() - started < 30
    assert ti_states(dag_run) == {"mask": "failed"}
    assert wait_run_status(dm_conn, 1, ("cancelled",)) == "cancelled"
    assert "execution_timeout reached" in text
    assert dm_conn.runs_created == 1


def test_deferred_failure_quotes_the_error_line_first(
    dm_conn: DataMasqueEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    op = DataMasqueRunOperator(
        task_id="mask",
        source_connection="pg",
        ruleset="rs",
        run_name="broken [emulator:fail]",
        poll_interval=0.2,
        deferrable=True,
    )
    with pytest.raises(DataMasqueRunError) as caught:
        run_operator(op, make_context())

    message = str(caught.value)
    assert caught.value.status == "failed"
    assert "ended failed" in message
    quoted = message.split("Last log lines (errors first):\n", 1)[1].splitlines()
    assert "ERROR:" in quoted[0]
    assert_lines_once(output(capfd), dm_conn, 1)


# ---- the trigger --------------------------------------------------------------------------------------


def test_trigger_serialize_round_trip() -> None:
    state = {"cursor": {"count": 3, "offset": 120}, "level_counts": {"INFO": 3}, "tail": [[20, "x"]]}
    trigger = DataMasqueRunTrigger(
        run_id=7,
        datamasque_conn_id="dm_other",
        poll_interval=2.5,
        end_time=1_900_000_000.5,
        stream_logs=False,
        monitor_state=state,
        task_try=3,
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_datamasque.triggers.runs.DataMasqueRunTrigger"
    assert kwargs == {
        "run_id": 7,
        "datamasque_conn_id": "dm_other",
        "poll_interval": 2.5,
        "end_time": 1_900_000_000.5,
        "stream_logs": False,
        "monitor_state": state,
        "task_try": 3,
    }
    rebuilt = DataMasqueRunTrigger(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)


def test_operator_defers_with_its_run_and_deadline(dm_conn: DataMasqueEmulator) -> None:
    from airflow.providers.common.compat.sdk import TaskDeferred

    op = DataMasqueRunOperator(
        task_id="mask",
        source_connection="pg",
        ruleset="rs",
        poll_interval=0.5,
        timeout=60,
        deferrable=True,
        datamasque_conn_id="datamasque_default",
    )
    before = time.time()
    with pytest.raises(TaskDeferred) as caught:
        op.execute(make_context())
    _, kwargs = caught.value.trigger.serialize()
    assert caught.value.method_name == "execute_complete"
    assert kwargs["run_id"] == 1
    assert kwargs["poll_interval"] == 0.5
    assert before + 55 < kwargs["end_time"] <= time.time() + 60
    assert kwargs["task_try"] == 1, "the trigger names the try that deferred"
    assert dm_conn.runs_created == 1


# ---- events are validated fail-closed ----------------------------------------------------------------


@pytest.mark.parametrize(
    "event",
    [
        None,
        "success",
        [],
        {},
        {"status": "succeeded", "run_id": 1, "run_status": "finished"},
        {"status": None, "run_id": 1},
        {"status": "success", "run_id": True, "run_status": "finished"},
        {"status": "success", "run_id": "1", "run_status": "finished"},
        {"status": "success", "run_id": None, "run_status": "finished"},
        {"status": "success", "run_id": 1, "run_status": "failed"},
        {"status": "success", "run_id": 1, "run_status": "cancelled"},
        {"status": "success", "run_id": 1, "run_status": None},
        {"status": "success", "run_id": 1, "run_status": "FINISHED_SOMEHOW"},
        {"status": "success", "run_id": 1},
    ],
)
def test_validate_event_fails_closed(event: Any) -> None:
    with pytest.raises(DataMasqueError, match="failing to be safe"):
        validate_event(event)


@pytest.mark.parametrize(
    "event",
    [
        {"status": "success", "run_id": 1, "run_status": "finished"},
        {"status": "success", "run_id": 1, "run_status": "finished_with_warnings"},
        {"status": "failed", "run_id": 1, "run_status": "failed"},
        {"status": "cancelled", "run_id": 1, "run_status": "cancelled"},
        {"status": "timeout", "run_id": 1, "run_status": "running"},
        {"status": "error", "run_id": 1, "run_status": None},
    ],
)
def test_validate_event_accepts_well_formed_events(event: dict[str, Any]) -> None:
    assert validate_event(event) == event


def _deferrable_op() -> DataMasqueRunOperator:
    return DataMasqueRunOperator(
        task_id="mask", source_connection="pg", ruleset="rs", poll_interval=0.2, deferrable=True
    )


@pytest.mark.parametrize(
    "event",
    [None, {"status": "success", "run_id": False, "run_status": "finished"}, {"status": "done", "run_id": 1}],
)
def test_execute_complete_rejects_bad_events(dm_conn: DataMasqueEmulator, event: Any) -> None:
    with pytest.raises(DataMasqueError, match="failing to be safe"):
        _deferrable_op().execute_complete(make_context(), event=event)
    assert dm_conn.journal == []


def test_execute_complete_trusts_the_server_over_a_success_event(dm_conn: DataMasqueEmulator) -> None:
    run_id = start_run("really failed [emulator:fail]")
    wait_run_status(dm_conn, run_id, ("failed",))
    event = {"status": "success", "run_id": run_id, "run_status": "finished", "message": "all good"}
    with pytest.raises(DataMasqueRunError, match="ended failed"):
        _deferrable_op().execute_complete(make_context(), event=event)


def test_execute_complete_error_event_fails_with_its_message(dm_conn: DataMasqueEmulator) -> None:
    event = {"status": "error", "run_id": 5, "message": "DataMasque run 5 not found: gone"}
    with pytest.raises(DataMasqueError, match="run 5 not found"):
        _deferrable_op().execute_complete(make_context(), event=event)


def test_execute_complete_timeout_event_cancels_the_run(dm_conn: DataMasqueEmulator) -> None:
    run_id = start_run("[emulator:long]")
    event = {"status": "timeout", "run_id": run_id, "run_status": "running", "message": "time is up"}
    with pytest.raises(DataMasqueRunError, match="run was cancelled"):
        _deferrable_op().execute_complete(make_context(), event=event)
    assert dm_conn.get_run(run_id)["status"] in ("cancelling", "cancelled")


def test_resuming_rides_out_a_transient_error_when_confirming(dm_conn: DataMasqueEmulator) -> None:
    """The run finished and the trigger said so; a 500 while confirming must not fail the task."""
    from airflow_provider_datamasque.emulator import FaultConfig

    run_id = start_run("[emulator:log_lines=2]")
    wait_run_status(dm_conn, run_id, ("finished",))
    dm_conn.set_faults(
        FaultConfig(error_rate=1.0, error_statuses=(500,), path_pattern=r"^GET /api/runs/\d+/$")
    )
    stop = threading.Event()

    def heal_after_first_500() -> None:
        # Not on a timer: on a loaded machine the first request may come after any fixed delay.
        while not stop.wait(0.02):
            if any(entry.fault == "error_500" for entry in dm_conn.journal):
                dm_conn.clear_faults()
                return

    healer = threading.Thread(target=heal_after_first_500, daemon=True)
    healer.start()
    event = {"status": "success", "run_id": run_id, "run_status": "finished", "monitor": {}}
    try:
        assert _deferrable_op().execute_complete(make_context(), event=event) == run_id
    finally:
        stop.set()
        healer.join()
    assert any(entry.fault == "error_500" for entry in dm_conn.journal)


def test_resuming_does_not_ride_out_a_permanent_error(dm_conn: DataMasqueEmulator) -> None:
    event = {"status": "success", "run_id": 42, "run_status": "finished", "monitor": {}}
    with pytest.raises(DataMasqueError, match="404"):
        _deferrable_op().execute_complete(make_context(), event=event)
    assert dm_conn.count_requests("GET", r"/api/runs/42/") == 1

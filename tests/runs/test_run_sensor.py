"""DataMasqueRunSensor in poke, reschedule and deferrable mode, through ``dag.test()``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_datamasque.hooks.errors import DataMasqueConfigError, DataMasqueError
from airflow_provider_datamasque.sensors.runs import DataMasqueRunSensor

from ._harness import (
    DataMasqueEmulator,
    assert_lines_once,
    cursor_variables,
    make_context,
    start_run,
    task_source,
    ti_states,
    wait_run_status,
)


def output(capfd: pytest.CaptureFixture[str]) -> str:
    captured = capfd.readouterr()
    return captured.out + captured.err


def sensor_source(task_id: str, run_id: int | str, **kwargs: Any) -> str:
    params = {"task_id": task_id, "run_id": str(run_id), "poke_interval": 0.3, "timeout": 60} | kwargs
    return task_source(task_id, "DataMasqueRunSensor", **params)


def start_task(run_name: str) -> str:
    """An upstream task that starts the run and returns at once; the sensor pulls its id."""
    return task_source(
        "start",
        "DataMasqueRunOperator",
        task_id="start",
        source_connection="pg",
        ruleset="rs",
        run_name=run_name,
        wait_for_completion=False,
    )


PULLED_ID = "{{ ti.xcom_pull(task_ids='start') }}"


@pytest.mark.parametrize("mode", ["poke", "deferrable"])
def test_sensor_waits_for_the_run_and_logs_each_line_once(
    dm_conn: DataMasqueEmulator,
    dag_factory: Callable[..., Any],
    capfd: pytest.CaptureFixture[str],
    mode: str,
) -> None:
    # Long enough that the run is still active at the first poke even on a loaded machine.
    dm_conn.run_seconds = 5.0
    extra = {"deferrable": True} if mode == "deferrable" else {"mode": "poke", "deferrable": False}
    dag = dag_factory(
        [start_task("external [emulator:log_lines=4]"), sensor_source("watch", PULLED_ID, **extra)],
        deps=["start >> watch"],
    )

    dag_run = dag.test()
    text = output(capfd)
    run_id = 1

    assert ti_states(dag_run) == {"start": "success", "watch": "success"}
    assert dm_conn.get_run(run_id)["status"] == "finished"
    assert dm_conn.count_requests("GET", rf"/api/runs/{run_id}/") >= 2  # it really waited
    assert dm_conn.runs_created == 1
    assert_lines_once(text, dm_conn, run_id)
    assert f"DataMasque run {run_id} (external" in text


def test_reschedule_mode_keeps_its_cursor_in_a_variable(
    dm_conn: DataMasqueEmulator,
    dag_factory: Callable[..., Any],
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each reschedule poke is a new process in production; dag.test() reuses the operator
    object, but ``execute`` drops the in-memory monitor, so every poke starts from the Variable."""
    from airflow_provider_datamasque.cursor_store import CursorVariable

    loaded: list[dict[str, Any] | None] = []
    saved_keys: list[str] = []
    real_load, real_save = CursorVariable.load, CursorVariable.save

    def spy_load(self: CursorVariable, run_id: int) -> dict[str, Any] | None:
        loaded.append(real_load(self, run_id))
        return loaded[-1]

    def spy_save(self: CursorVariable, run_id: int, state: Any) -> None:
        saved_keys.append(self.key)
        real_save(self, run_id, state)

    monkeypatch.setattr(CursorVariable, "load", spy_load)
    monkeypatch.setattr(CursorVariable, "save", spy_save)
    dm_conn.run_seconds = 3.0
    dag = dag_factory(
        [
            start_task("rescheduled [emulator:log_lines=6]"),
            sensor_source("watch", PULLED_ID, mode="reschedule", deferrable=False),
        ],
        deps=["start >> watch"],
    )

    dag_run = dag.test()
    text = output(capfd)
    run_id = 1

    assert ti_states(dag_run) == {"start": "success", "watch": "success"}
    assert len(loaded) >= 2, "the sensor should have been rescheduled at least once"
    assert loaded[0] is None
    assert all(state and state["cursor"]["count"] > 0 for state in loaded[1:])
    assert saved_keys and set(saved_keys) == {
        f"datamasque_sensor_cursor.{dag.dag_id}.watch.{dag_run.run_id}.-1"
    }
    assert "where the earlier try stopped" not in text, "a reschedule is not a retry"
    assert cursor_variables() == {}, "the cursor Variable is removed when the sensor ends"
    assert_lines_once(text, dm_conn, run_id)


def test_failed_run_fails_the_sensor_and_soft_fail_skips(
    dm_conn: DataMasqueEmulator, dag_factory: Callable[..., Any], capfd: pytest.CaptureFixture[str]
) -> None:
    run_id = start_run("doomed [emulator:fail]")
    dag = dag_factory(
        [
            sensor_source("poke_hard", run_id, mode="poke", deferrable=False),
            sensor_source("poke_soft", run_id, mode="poke", deferrable=False, soft_fail=True),
            sensor_source("deferred_hard", run_id, deferrable=True),
            sensor_source("deferred_soft", run_id, deferrable=True, soft_fail=True),
        ]
    )

    dag_run = dag.test()
    text = output(capfd)

    assert ti_states(dag_run) == {
        "poke_hard": "failed",
        "poke_soft": "skipped",
        "deferred_hard": "failed",
        "deferred_soft": "skipped",
    }
    assert dm_conn.get_run(run_id)["status"] == "failed"
    assert_lines_once(text, dm_conn, run_id, tries=4)
    assert "soft_fail: DataMasque run" in text


def test_warnings_fail_the_sensor_only_with_fail_on_warnings(
    dm_conn: DataMasqueEmulator, dag_factory: Callable[..., Any], capfd: pytest.CaptureFixture[str]
) -> None:
    dm_conn.run_seconds = 0.5
    run_id = start_run("noisy [emulator:warnings]")
    wait_run_status(dm_conn, run_id, ("finished_with_warnings",))
    dag = dag_factory(
        [
            sensor_source("lenient", run_id, mode="poke", deferrable=False),
            sensor_source("strict", run_id, mode="poke", deferrable=False, fail_on_warnings=True),
        ]
    )
    dag_run = dag.test()
    output(capfd)
    assert ti_states(dag_run) == {"lenient": "success", "strict": "failed"}


def test_run_cancelled_elsewhere_fails_the_sensor(dm_conn: DataMasqueEmulator) -> None:
    run_id = start_run("[emulator:long]")
    dm_conn.set_run_status(run_id, "cancelled")
    sensor = DataMasqueRunSensor(task_id="watch", run_id=run_id, poke_interval=0.2, deferrable=False)
    with pytest.raises(DataMasqueError, match="ended cancelled"):
        sensor.poke(make_context(task_id="watch"))


def test_not_terminal_poke_returns_false(dm_conn: DataMasqueEmulator) -> None:
    run_id = start_run("[emulator:long]")
    sensor = DataMasqueRunSensor(task_id="watch", run_id=f" {run_id} ", poke_interval=0.2, deferrable=False)
    assert sensor.poke(make_context(task_id="watch")) is False


@pytest.mark.parametrize("bad", ["abc", "", "1.5", None])
def test_bad_run_id_is_a_config_error(dm_conn: DataMasqueEmulator, bad: Any) -> None:
    sensor = DataMasqueRunSensor(task_id="watch", run_id=bad, poke_interval=0.2, deferrable=False)
    with pytest.raises(DataMasqueConfigError, match="run_id must be a DataMasque run id"):
        sensor.poke(make_context(task_id="watch"))
    assert dm_conn.journal == []


@pytest.mark.parametrize("soft_fail", [False, True])
def test_deferred_sensor_timeout_event(dm_conn: DataMasqueEmulator, soft_fail: bool) -> None:
    from airflow.providers.common.compat.sdk import AirflowSensorTimeout, AirflowSkipException

    run_id = start_run("[emulator:long]")
    sensor = DataMasqueRunSensor(
        task_id="watch", run_id=run_id, poke_interval=0.2, deferrable=True, soft_fail=soft_fail
    )
    event = {"status": "timeout", "run_id": run_id, "run_status": "running", "monitor": {}}
    expected = AirflowSkipException if soft_fail else AirflowSensorTimeout
    with pytest.raises(expected, match=f"waiting for DataMasque run {run_id}"):
        sensor.execute_complete(make_context(task_id="watch"), event=event)
    # A sensor only watches: it never cancels a run it did not start.
    assert dm_conn.count_requests("POST", rf"/api/runs/{run_id}/cancel/") == 0


def test_deferred_sensor_rejects_a_lying_event(dm_conn: DataMasqueEmulator) -> None:
    sensor = DataMasqueRunSensor(task_id="watch", run_id=1, poke_interval=0.2, deferrable=True)
    with pytest.raises(DataMasqueError, match="failing to be safe"):
        sensor.execute_complete(
            make_context(task_id="watch"), event={"status": "success", "run_id": 1, "run_status": "failed"}
        )


def test_sensor_state_round_trips_through_json(dm_conn: DataMasqueEmulator) -> None:
    """What reschedule mode stores in the Variable is plain JSON and restores to the same cursor."""
    run_id = start_run("x [emulator:log_lines=2]")
    wait_run_status(dm_conn, run_id, ("finished",))
    sensor = DataMasqueRunSensor(task_id="watch", run_id=run_id, poke_interval=0.2, deferrable=False)
    monitor = sensor._monitor(run_id)
    monitor.poll()
    restored = sensor._monitor(run_id, json.loads(json.dumps(monitor.state())))
    assert restored.cursor == monitor.cursor
    assert restored.level_counts == monitor.level_counts
    assert list(restored.tail) == list(monitor.tail)
    assert restored.hook.get_run_log_since(run_id, restored.cursor, final=True)[0] == []


@pytest.mark.parametrize("status", [500, 502, 503])
def test_poke_rides_out_a_transient_error(dm_conn: DataMasqueEmulator, status: int) -> None:
    """One bad answer from DataMasque is "not yet", not a failed sensor."""
    from airflow_provider_datamasque.emulator import FaultConfig

    run_id = start_run("[emulator:log_lines=2]")
    sensor = DataMasqueRunSensor(task_id="watch", run_id=run_id, poke_interval=0.2, deferrable=False)
    context = make_context(task_id="watch")
    dm_conn.set_faults(
        FaultConfig(error_rate=1.0, error_statuses=(status,), path_pattern=rf"^GET /api/runs/{run_id}/$")
    )
    assert sensor.poke(context) is False
    dm_conn.clear_faults()
    wait_run_status(dm_conn, run_id, ("finished",))
    assert sensor.poke(context) is True


def test_poke_fails_on_a_permanent_error(dm_conn: DataMasqueEmulator) -> None:
    sensor = DataMasqueRunSensor(task_id="watch", run_id=42, poke_interval=0.2, deferrable=False)
    with pytest.raises(DataMasqueError, match="404"):
        sensor.poke(make_context(task_id="watch"))

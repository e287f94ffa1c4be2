"""A retry carries on where the earlier try's log stopped: the sensor in poke, reschedule and
deferrable mode, and the deferrable operator reattaching to a still-active run. Real retries
through ``dag.test()`` and real Airflow Variables; try 1 loses DataMasque mid-run with a 403 (not
waited through), try 2 must log each run-log line the earlier try did not, and no other. Then the
same two tries driven directly (execute, the trigger, execute_complete) with the Variables in a
dict, for what only Airflow 3.0's retries go through under ``dag.test()``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from airflow_provider_datamasque.hooks.errors import DataMasqueAuthError, DataMasqueError

from ._harness import (
    DataMasqueEmulator,
    FakeVariables,
    assert_lines_once,
    cursor_variables,
    make_context,
    mask_task_source,
    start_run,
    ti_states,
)
from .test_run_sensor import PULLED_ID, output, sensor_source, start_task


def lose_datamasque_once(monkeypatch: pytest.MonkeyPatch, after_lines: int) -> dict[str, int]:
    """The first read of the run (worker or triggerer) made once the watcher has logged at least
    ``after_lines`` of the run's log lines answers 403: that try fails, with those lines behind it.

    Counted in lines, not reads or seconds, so the try fails part-way through the log on every
    Airflow line and machine (Airflow 3.0's ``dag.test()`` takes about 1.6 s per reschedule poke,
    where a read count would fall after the run had ended). Returns ``reads`` (every read) and
    ``denied_at``: how many lines the watcher had logged when it got the 403.
    """
    from airflow_provider_datamasque.monitor import RunMonitor

    seen = {"reads": 0, "denied_at": -1}
    real_fetch, real_fetch_async = RunMonitor.fetch, RunMonitor.fetch_async

    def denied_now(monitor: RunMonitor) -> bool:
        seen["reads"] += 1
        if seen["denied_at"] < 0 and monitor.cursor.count >= after_lines:
            seen["denied_at"] = monitor.cursor.count
            return True
        return False

    def fetch(self: RunMonitor) -> tuple[list[Any], Any]:
        if denied_now(self):
            raise DataMasqueAuthError("DataMasque GET /api/runs/1/ failed with HTTP 403: denied", status=403)
        return real_fetch(self)

    async def fetch_async(self: RunMonitor, reader: Any) -> tuple[list[Any], Any]:
        if denied_now(self):
            raise DataMasqueAuthError("DataMasque GET /api/runs/1/ failed with HTTP 403: denied", status=403)
        return await real_fetch_async(self, reader)

    monkeypatch.setattr(RunMonitor, "fetch", fetch)
    monkeypatch.setattr(RunMonitor, "fetch_async", fetch_async)
    return seen


#: Lines try 1 logs before it loses DataMasque (the run logs 25: 3 set-up lines, 20 batches, 2 more).
LOST_AFTER = 3


RETRY = {"retries": 1, "retry_delay": timedelta(seconds=0)}


@pytest.mark.parametrize("mode", ["poke", "reschedule", "deferrable"])
def test_sensor_retry_streams_each_line_once_across_tries(
    dm_conn: DataMasqueEmulator,
    dag_factory: Callable[..., Any],
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
) -> None:
    dm_conn.run_seconds = 4.0
    seen = lose_datamasque_once(monkeypatch, after_lines=LOST_AFTER)
    how = {"deferrable": True} if mode == "deferrable" else {"mode": mode, "deferrable": False}
    run_id = 1
    dag = dag_factory(
        [
            start_task("watched [emulator:log_lines=20]"),
            sensor_source("watch", PULLED_ID, **how, **RETRY),
        ],
        deps=["start >> watch"],
    )

    dag_run = dag.test()
    text = output(capfd)

    assert ti_states(dag_run) == {"start": "success", "watch": "success"}
    assert seen["denied_at"] >= LOST_AFTER, "try 1 should have lost DataMasque while watching"
    assert "failed with HTTP 403" in text
    assert_lines_once(text, dm_conn, run_id)
    resumed = f"Streaming the log of DataMasque run {run_id} from line {seen['denied_at']}, where the earlier"
    assert resumed in text, "try 2 should resume from try 1's cursor"
    assert cursor_variables() == {}, "the cursor Variable is removed once the sensor succeeded"


def test_deferrable_operator_retry_reattaches_and_streams_each_line_once(
    dm_conn: DataMasqueEmulator,
    dag_factory: Callable[..., Any],
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow_provider_datamasque.triggers.runs import DataMasqueRunTrigger

    started_from: list[int] = []
    real_init = DataMasqueRunTrigger.__init__

    def spy_init(self: DataMasqueRunTrigger, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        started_from.append(int(self.monitor_state.get("cursor", {}).get("count", 0)))

    monkeypatch.setattr(DataMasqueRunTrigger, "__init__", spy_init)
    dm_conn.run_seconds = 6.0  # still active when try 2 starts, even at Airflow 3.0's pace
    seen = lose_datamasque_once(monkeypatch, after_lines=LOST_AFTER)
    dag = dag_factory(
        [
            mask_task_source(
                run_name="nightly [emulator:log_lines=20]",
                poll_interval=0.2,
                deferrable=True,
                **RETRY,
            )
        ]
    )

    dag_run = dag.test()
    text = output(capfd)

    assert ti_states(dag_run) == {"mask": "success"}
    assert seen["denied_at"] >= LOST_AFTER, "try 1's trigger should have lost DataMasque"
    assert "failed with HTTP 403" in text
    assert dm_conn.runs_created == 1, "the retry reattached instead of masking again"
    assert_lines_once(text, dm_conn, 1)
    assert "is still active" in text and "where the earlier try stopped" in text
    # Each try's trigger (built once by the task, and again from its kwargs where dag.test runs it).
    assert started_from[0] == 0 and started_from[-1] == seen["denied_at"], started_from
    assert set(started_from) == {0, seen["denied_at"]}, started_from
    assert cursor_variables() == {}, "the cursor Variable is removed once the task succeeded"


def test_a_failure_that_is_not_retried_removes_the_cursor(
    dm_conn: DataMasqueEmulator, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing is left behind for a retry that will not come; a retried failure keeps it."""
    from airflow_provider_datamasque.operators.runs import DataMasqueRunOperator

    variables = FakeVariables().install(monkeypatch)
    event = {"status": "error", "run_id": 1, "message": "403", "monitor": {"cursor": {"count": 3}}}
    for retries, kept in ((1, True), (0, False)):
        op = DataMasqueRunOperator(
            task_id="mask", source_connection="pg", ruleset="rs", deferrable=True, retries=retries
        )
        with pytest.raises(Exception, match="403"):
            op.execute_complete(make_context(), event=dict(event))
        assert bool(variables.store) is kept, (retries, variables.store)


def test_retry_of_a_deferrable_sensor_passes_the_cursor_to_its_trigger(
    dm_conn: DataMasqueEmulator, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What try 1 got back from its trigger is where try 2's trigger starts; a cursor saved for
    another run is ignored."""
    from airflow.providers.common.compat.sdk import TaskDeferred

    from airflow_provider_datamasque.sensors.runs import DataMasqueRunSensor

    variables = FakeVariables().install(monkeypatch)
    run_id = start_run("x [emulator:log_lines=4]")

    def sensor() -> DataMasqueRunSensor:
        return DataMasqueRunSensor(
            task_id="watch", run_id=run_id, poke_interval=0.2, deferrable=True, retries=2
        )

    state = {"cursor": {"count": 5}, "level_counts": {}, "tail": []}
    with pytest.raises(Exception, match="403"):
        sensor().execute_complete(
            make_context(task_id="watch"),
            event={"status": "error", "run_id": run_id, "message": "403", "monitor": state},
        )
    assert list(variables.store) == ["datamasque_sensor_cursor.dm_dag.watch.manual__test.-1"]
    with pytest.raises(TaskDeferred) as deferred:
        sensor().execute(make_context(task_id="watch", try_number=2))
    assert deferred.value.trigger.monitor_state["cursor"]["count"] == 5
    assert "from line 5, where the earlier try stopped" in output(capfd)

    other = DataMasqueRunSensor(task_id="watch", run_id=run_id + 1, poke_interval=0.2, deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        other.execute(make_context(task_id="watch", try_number=2))
    assert deferred.value.trigger.monitor_state == {}


# ---- a retry resumed with the earlier try's trigger event (Airflow 3.0) -------------------------------
# Airflow 3.0 keeps a deferred task instance's next_method and next_kwargs when the try that resumed
# fails, so its retry skips execute and is resumed with try 1's event (apache/airflow#56704; 3.0.6's
# execution API sets only the state on a retry, 3.3.2's also clears both). The dag.test() retry tests
# above go through that on 3.0 only; these drive the same two tries directly on every Airflow line.


@pytest.mark.parametrize("task", ["operator", "sensor"])
def test_a_retry_resumed_with_the_earlier_tries_event_starts_over_from_its_cursor(
    dm_conn: DataMasqueEmulator,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    task: str,
) -> None:
    """Try 1 defers, its trigger loses DataMasque after some lines and its resume fails; try 2 is
    handed that same event. It must not fail on it again: it reattaches to the same run, defers from
    try 1's cursor, and between them the two tries log every run-log line once."""
    from airflow.providers.common.compat.sdk import TaskDeferred

    from airflow_provider_datamasque.operators.runs import DataMasqueRunOperator
    from airflow_provider_datamasque.sensors.runs import DataMasqueRunSensor

    from ._harness import run_trigger

    variables = FakeVariables().install(monkeypatch)
    dm_conn.run_seconds = 3.0
    if task == "operator":
        task_id = "mask"

        def make() -> Any:
            return DataMasqueRunOperator(
                task_id=task_id,
                source_connection="pg",
                ruleset="rs",
                run_name="nightly [emulator:log_lines=10]",
                poll_interval=0.1,
                deferrable=True,
                retries=1,
            )

    else:
        task_id = "watch"
        watched = start_run("watched [emulator:log_lines=10]")

        def make() -> Any:
            return DataMasqueRunSensor(
                task_id=task_id, run_id=watched, poke_interval=0.1, deferrable=True, retries=1
            )

    try1, try2 = make_context(task_id=task_id), make_context(task_id=task_id, try_number=2)

    with pytest.raises(TaskDeferred) as deferred:
        make().execute(try1)
    assert deferred.value.trigger.task_try == 1
    seen = lose_datamasque_once(monkeypatch, after_lines=LOST_AFTER)
    event = run_trigger(deferred.value.trigger)
    assert event["status"] == "error" and event["task_try"] == 1, event
    assert seen["denied_at"] >= LOST_AFTER
    with pytest.raises(DataMasqueError, match="HTTP 403"):
        make().execute_complete(try1, event=event)  # try 1's own event: try 1 fails on it
    assert len(variables.store) == 1, "try 1 failed with a retry to come: its cursor is kept"

    with pytest.raises(TaskDeferred) as deferred:
        make().execute_complete(try2, event=event)  # what Airflow 3.0 hands try 2
    trigger = deferred.value.trigger
    assert trigger.task_try == 2
    assert trigger.monitor_state["cursor"]["count"] == seen["denied_at"]
    assert dm_conn.runs_created == 1, "try 2 reattached to the run instead of masking again"
    final = run_trigger(trigger)
    assert final["status"] == "success" and final["task_try"] == 2, final
    run_id = make().execute_complete(try2, event=final)

    text = output(capfd)
    assert "This is try 2, resumed with the trigger event of try 1" in text
    assert f"from line {seen['denied_at']}, where the earlier try stopped" in text
    assert_lines_once(text, dm_conn, 1)
    assert variables.store == {}, "the task ended for good: no cursor left behind"
    if task == "operator":
        assert run_id == 1


@pytest.mark.parametrize(
    ("event_try", "current_try", "stale"),
    [(1, 2, True), (1, 3, True), (2, 2, False), (None, 2, False), (True, 2, False), ("1", 2, False)],
)
def test_only_an_event_from_an_earlier_try_is_stale(event_try: Any, current_try: int, stale: bool) -> None:
    """An event without ``task_try`` (a trigger deferred by an earlier provider version) or with one
    that is not a plain int is this try's own: it is judged as before, never skipped."""
    from airflow_provider_datamasque.operators.runs import DataMasqueRunOperator

    op = DataMasqueRunOperator(task_id="mask", source_connection="pg", ruleset="rs", deferrable=True)
    event = {"status": "error", "run_id": 1, "message": "x", "task_try": event_try}
    assert op._stale_event(make_context(try_number=current_try), event) is stale

"""The run's last log lines reach the task log exactly once: after a retry finds its run already
over, and after a timeout or on_kill cancels the run. Against the emulator, called directly."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from airflow_provider_datamasque.hooks.errors import DataMasqueAuthError, DataMasqueRunError
from airflow_provider_datamasque.operators.runs import DataMasqueRunOperator

from ._harness import (
    DataMasqueEmulator,
    FakeVariables,
    assert_lines_once,
    count_logged,
    cursor_variables,
    in_thread,
    make_context,
    mask_task_source,
    run_operator,
    served_log_lines,
    ti_states,
    wait_for,
    wait_run_status,
)
from .test_run_operator import operator, output


def summaries(text: str, run_id: int = 1) -> list[str]:
    return re.findall(rf"DataMasque run {run_id} \(.*?\) \w+(?: in [\d.]+s)?; \d+ log lines", text)


def fail_reading_after(op: DataMasqueRunOperator, polls: int) -> None:
    """The try's watcher dies (a non-transient error) after ``polls`` reads; the run goes on."""
    original = op.hook.get_run
    calls = {"n": 0}

    def get_run(run_id: Any) -> dict[str, Any]:
        calls["n"] += 1
        if calls["n"] > polls:
            raise DataMasqueAuthError("DataMasque GET /api/runs/1/ failed with HTTP 403: denied", status=403)
        return original(run_id)

    op.hook.get_run = get_run  # type: ignore[method-assign]


# ---- a retry finds the earlier try's run already over -------------------------------------------------


def test_retry_streams_only_the_lines_the_earlier_try_missed(
    dm_conn: DataMasqueEmulator, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    variables = FakeVariables().install(monkeypatch)
    first_op = operator(run_name="nightly [emulator:log_lines=20]", retries=1)
    first_op.cursor_save_interval = 0.0
    fail_reading_after(first_op, 8)
    with pytest.raises(DataMasqueAuthError):
        run_operator(first_op, make_context(run_id="manual__r", try_number=1))
    first = output(capfd)
    assert list(variables.store) == ["datamasque_run_cursor.dm_dag.mask.manual__r.-1"]
    wait_run_status(dm_conn, 1, ("finished",))

    retry = operator(run_name="nightly [emulator:log_lines=20]")
    assert run_operator(retry, make_context(run_id="manual__r", try_number=2)) == 1
    second = output(capfd)

    lines = served_log_lines(dm_conn, 1)
    in_first = {line for line, n in count_logged(first, lines).items() if n}
    assert in_first and len(in_first) < len(set(lines)), "the first try should have seen part of the log"
    second_counts = count_logged(second, lines)
    assert all(second_counts[line] == (0 if line in in_first else 1) for line in lines), second_counts
    assert dm_conn.runs_created == 1
    assert "already finished finished: not masking again" in second
    assert "from line" in second and "where the earlier try stopped" in second
    assert len(summaries(second)) == 1
    assert variables.store == {}, "the cursor is removed once the task has reported the run"


@pytest.mark.parametrize("run_state_at_retry", ["active", "finished"])
def test_retry_under_dag_test_resumes_from_the_cursor_variable(
    dm_conn: DataMasqueEmulator,
    dag_factory: Callable[..., Any],
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    run_state_at_retry: str,
) -> None:
    """Real Airflow Variables and a real retry: try 1 loses DataMasque mid-run (a 403 that is not
    waited through), try 2 reattaches and logs only what try 1 had not, whether the run is still
    active or already over by then."""
    from airflow_provider_datamasque.hooks.datamasque import DataMasqueHook

    real_get_run = DataMasqueHook.get_run
    calls = {"n": 0}

    def get_run_fails_once(self: DataMasqueHook, run_id: Any) -> dict[str, Any]:
        calls["n"] += 1
        if calls["n"] == 8:
            raise DataMasqueAuthError("DataMasque GET /api/runs/1/ failed with HTTP 403: denied", status=403)
        return real_get_run(self, run_id)

    monkeypatch.setattr(DataMasqueHook, "get_run", get_run_fails_once)
    delay = 0.0 if run_state_at_retry == "active" else 3.0
    dag = dag_factory(
        [
            mask_task_source(
                run_name="nightly [emulator:log_lines=20]",
                poll_interval=0.1,
                deferrable=False,
                retries=1,
                retry_delay=timedelta(seconds=delay),
            )
        ]
    )

    dag_run = dag.test()
    text = output(capfd)

    assert ti_states(dag_run) == {"mask": "success"}
    assert calls["n"] > 8, "try 1 should have failed while watching"
    assert dm_conn.runs_created == 1
    assert "where the earlier try stopped" in text
    if run_state_at_retry == "finished":
        assert "already finished finished: not masking again" in text
    assert_lines_once(text, dm_conn, 1)
    assert len(summaries(text)) == 1
    assert cursor_variables() == {}, "the cursor Variable is removed once the task reported the run"


def test_retry_without_a_cursor_streams_the_whole_log_and_says_so(
    dm_conn: DataMasqueEmulator, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    variables = FakeVariables().install(monkeypatch)
    first_op = operator(run_name="nightly [emulator:log_lines=6]", retries=1)
    fail_reading_after(first_op, 3)
    with pytest.raises(DataMasqueAuthError):
        run_operator(first_op, make_context(run_id="manual__n"))
    wait_run_status(dm_conn, 1, ("finished",))
    capfd.readouterr()

    assert variables.store, "try 1 kept its log cursor"
    variables.store.clear()  # the earlier try's cursor is lost (deleted, or never written)
    retry = operator(run_name="nightly [emulator:log_lines=6]")
    assert run_operator(retry, make_context(run_id="manual__n", try_number=2)) == 1
    second = output(capfd)

    lines = served_log_lines(dm_conn, 1)
    assert set(count_logged(second, lines).values()) == {1}
    assert "No log cursor from an earlier try" in second and "streaming its whole log" in second
    assert len(summaries(second)) == 1


def test_retry_of_a_finished_with_warnings_run_warns(
    dm_conn: DataMasqueEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    dm_conn.run_seconds = 0.3
    assert run_operator(operator(run_name="w [emulator:warnings]"), make_context()) == 1
    capfd.readouterr()

    assert run_operator(operator(run_name="w [emulator:warnings]"), make_context(try_number=2)) == 1
    second = output(capfd)
    assert "finished with warnings (see the log lines above)" in second
    assert set(count_logged(second, served_log_lines(dm_conn, 1)).values()) == {1}
    assert dm_conn.runs_created == 1


def test_retry_of_a_finished_with_warnings_run_fails_with_fail_on_warnings(
    dm_conn: DataMasqueEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    dm_conn.run_seconds = 0.3
    first_op = operator(run_name="w [emulator:warnings]", fail_on_warnings=True)
    fail_reading_after(first_op, 1)
    with pytest.raises(DataMasqueAuthError):
        run_operator(first_op, make_context())
    wait_run_status(dm_conn, 1, ("finished_with_warnings",))
    capfd.readouterr()

    with pytest.raises(DataMasqueRunError, match="finished with warnings and fail_on_warnings=True"):
        run_operator(
            operator(run_name="w [emulator:warnings]", fail_on_warnings=True), make_context(try_number=2)
        )
    assert dm_conn.runs_created == 1
    assert len(summaries(output(capfd))) == 1


# ---- cancelling on timeout / kill streams the run's last lines -------------------------------------


def test_timeout_streams_the_lines_up_to_cancelled_once(
    dm_conn: DataMasqueEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(DataMasqueRunError, match=r"timeout reached.*run was cancelled"):
        run_operator(operator(run_name="[emulator:long]", timeout=1), make_context())
    text = output(capfd)
    assert dm_conn.get_run(1)["status"] == "cancelled"
    lines = served_log_lines(dm_conn, 1)
    assert "Cancellation requested." in lines[-2] and "status cancelled" in lines[-1]
    assert set(count_logged(text, lines).values()) == {1}
    (summary,) = summaries(text)
    assert " cancelled" in summary


def test_on_kill_streams_the_lines_up_to_cancelled_once(
    dm_conn: DataMasqueEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    op = operator(run_name="[emulator:long]")
    thread, outcome = in_thread(run_operator, op, make_context())
    wait_for(lambda: dm_conn.runs_created == 1 and op.run_id == 1, what="the run to start")

    op.on_kill()  # As Airflow's SIGTERM handler does, from the middle of the wait.
    assert dm_conn.get_run(1)["status"] == "cancelled", "on_kill returns once the run is over"
    thread.join(timeout=15)
    assert isinstance(outcome.get("error"), DataMasqueRunError)

    text = output(capfd)
    lines = served_log_lines(dm_conn, 1)
    assert "status cancelled" in lines[-1]
    assert set(count_logged(text, lines).values()) == {1}
    assert len(summaries(text)) == 1
    assert dm_conn.count_requests("POST", r"/api/runs/1/cancel/") == 1


def test_interrupted_wait_streams_the_last_lines_and_keeps_the_original_error(
    dm_conn: DataMasqueEmulator, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """execution_timeout lands mid-wait as an exception; the drain must not replace it."""
    import time

    from airflow.providers.common.compat.sdk import AirflowTaskTimeout

    from airflow_provider_datamasque.operators import runs as runs_module

    class InterruptedTime:
        def __init__(self) -> None:
            self.interrupted = False

        def __getattr__(self, name: str) -> Any:
            return getattr(time, name)

        def sleep(self, seconds: float) -> None:
            if not self.interrupted:
                self.interrupted = True
                raise AirflowTaskTimeout("Timeout, PID: 1")
            time.sleep(seconds)

    monkeypatch.setattr(runs_module, "time", InterruptedTime())
    with pytest.raises(AirflowTaskTimeout):
        run_operator(operator(run_name="[emulator:long]"), make_context())
    monkeypatch.setattr(runs_module, "time", time)
    text = output(capfd)
    assert dm_conn.get_run(1)["status"] == "cancelled"
    assert set(count_logged(text, served_log_lines(dm_conn, 1)).values()) == {1}
    assert len(summaries(text)) == 1


def test_drain_is_bounded_and_its_errors_do_not_mask_the_timeout(
    dm_conn: DataMasqueEmulator, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    op = operator(run_name="[emulator:long]", timeout=1)
    original = op.hook.cancel_run

    def cancel_then_break(run_id: Any) -> Any:
        result = original(run_id)
        # From now on every read fails: the drain can only log that.
        monkeypatch.setattr(op.hook, "get_run", lambda _id: (_ for _ in ()).throw(RuntimeError("boom")))
        return result

    monkeypatch.setattr(op.hook, "cancel_run", cancel_then_break)
    with pytest.raises(DataMasqueRunError, match="timeout reached"):
        run_operator(op, make_context())
    assert "Could not stream the last log lines of cancelled DataMasque run 1: RuntimeError: boom" in output(
        capfd
    )


def test_drain_gives_up_after_cancel_drain_seconds(
    dm_conn: DataMasqueEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    import time

    dm_conn.run_seconds = 200.0  # cancelling -> cancelled takes 1 s (capped) in the emulator
    op = operator(run_name="slow", timeout=0.5)
    op.cancel_drain_seconds = 0.3
    started = time.monotonic()
    with pytest.raises(DataMasqueRunError, match="timeout reached"):
        run_operator(op, make_context())
    assert time.monotonic() - started < 3
    text = output(capfd)
    assert "is still cancelling after 0s; later log lines are not in this task log" in text
    assert len(summaries(text)) == 1

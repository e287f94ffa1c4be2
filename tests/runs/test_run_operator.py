"""DataMasqueRunOperator against the emulator, called directly with a small fake context."""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_datamasque.hooks.errors import (
    DataMasqueConfigError,
    DataMasqueConflictError,
    DataMasqueRunError,
)
from airflow_provider_datamasque.operators.runs import DataMasqueRunOperator

from ._harness import (
    DataMasqueEmulator,
    assert_lines_once,
    count_logged,
    in_thread,
    level_prefix,
    make_context,
    run_operator,
    served_log_lines,
    wait_for,
    wait_run_status,
)

SUMMARY = re.compile(r"DataMasque run 1 \(.*\) finished in [\d.]+s; \d+ log lines \(\d+ INFO\)")


def operator(**kwargs: Any) -> DataMasqueRunOperator:
    params: dict[str, Any] = {
        "task_id": "mask",
        "source_connection": "pg",
        "ruleset": "rs",
        "poll_interval": 0.2,
        "deferrable": False,
    }
    return DataMasqueRunOperator(**(params | kwargs))


def output(capfd: pytest.CaptureFixture[str]) -> str:
    captured = capfd.readouterr()
    return captured.out + captured.err


# ---- waiting in the worker ------------------------------------------------------------------------


def test_sync_wait_finishes_pushes_xcom_and_logs_each_line_once(
    dm_conn: DataMasqueEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    ctx = make_context()
    op = operator(run_name="nightly [emulator:log_lines=4]")

    assert run_operator(op, ctx) == 1

    text = output(capfd)
    assert dm_conn.get_run(1)["status"] == "finished"
    assert dm_conn.runs_created == 1
    assert ctx["ti"].xcoms["run_id"] == 1
    assert ctx["ti"].xcoms["run_url"].startswith(dm_conn.url)
    assert ctx["ti"].xcoms["run_url"].rstrip("/").endswith("1")
    lines = assert_lines_once(text, dm_conn, 1)
    assert len(lines) >= 8
    assert SUMMARY.search(text), text[-2000:]


def test_default_run_name_identifies_the_task_instance(dm_conn: DataMasqueEmulator) -> None:
    run_operator(operator(wait_for_completion=False), make_context(dag_id="d1", run_id="manual__x"))
    assert dm_conn.get_run(1)["name"] == "d1.mask.manual__x"


def test_wait_for_completion_false_returns_once_started(dm_conn: DataMasqueEmulator) -> None:
    op = operator(run_name="[emulator:long]", wait_for_completion=False)
    assert run_operator(op, make_context()) == 1
    assert dm_conn.get_run(1)["status"] in ("queued", "validating", "running")
    assert dm_conn.count_requests("GET", r"/api/runs/1/log/") == 0


def test_failed_run_fails_with_status_and_error_line_first(
    dm_conn: DataMasqueEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(DataMasqueRunError) as caught:
        run_operator(operator(run_name="broken [emulator:fail]"), make_context())

    message = str(caught.value)
    assert caught.value.status == "failed" and caught.value.run_id == 1
    assert "ended failed" in message
    quoted = message.split("Last log lines (errors first):\n", 1)[1].splitlines()
    assert "ERROR:" in quoted[0]
    assert any("Run finished with status failed" in line for line in quoted[1:])
    assert_lines_once(output(capfd), dm_conn, 1)


def test_warnings_run_succeeds_with_a_warning(
    dm_conn: DataMasqueEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    assert run_operator(operator(run_name="[emulator:warnings]"), make_context()) == 1
    text = output(capfd)
    assert dm_conn.get_run(1)["status"] == "finished_with_warnings"
    assert re.search(level_prefix("warning") + "DataMasque run 1 finished with warnings", text)
    lines = assert_lines_once(text, dm_conn, 1)
    assert sum("WARNING:" in line for line in lines) == 2


def test_warnings_run_fails_with_fail_on_warnings(dm_conn: DataMasqueEmulator) -> None:
    with pytest.raises(DataMasqueRunError, match="fail_on_warnings=True") as caught:
        run_operator(operator(run_name="[emulator:warnings]", fail_on_warnings=True), make_context())
    assert caught.value.status == "finished_with_warnings"
    assert "WARNING:" in str(caught.value)


# ---- conflicts and bad input ------------------------------------------------------------------------


def test_second_run_on_busy_connection_names_the_active_run(dm_conn: DataMasqueEmulator) -> None:
    run_operator(operator(run_name="first [emulator:long]", wait_for_completion=False), make_context())

    with pytest.raises(DataMasqueConflictError) as caught:
        run_operator(operator(task_id="other"), make_context(task_id="other"))

    message = str(caught.value)
    assert caught.value.status == 409
    assert "Run 1 ('first [emulator:long]'" in message
    assert "DataMasqueCancelRunOperator" in message
    assert dm_conn.runs_created == 1


SECRET = "tensecret!"


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"dry_rnu": True}, "Unknown run option 'dry_rnu'"),
        ({"run_secret": SECRET}, "run_secret' must be 20 to 256 characters long"),
        ({"batch_size": 0}, "'batch_size' must be a positive integer"),
        ({"batch_size": -5}, "'batch_size' must be a positive integer"),
        ({"max_rows": "many"}, "'max_rows' must be a positive integer"),
        ({"dry_run": "yes"}, "'dry_run' must be true or false"),
        ({"batch_size": True}, "'batch_size' must be a positive integer"),
        ({"auto_pull_branch": 3}, "'auto_pull_branch' must be a string"),
        ("dry_run=true", "must be a dict"),
    ],
)
def test_bad_options_fail_before_any_request(
    dm_conn: DataMasqueEmulator, capfd: pytest.CaptureFixture[str], options: Any, match: str
) -> None:
    with pytest.raises(DataMasqueConfigError, match=re.escape(match)) as caught:
        run_operator(operator(options=options), make_context())
    assert dm_conn.journal == []
    assert dm_conn.runs_created == 0
    assert SECRET not in str(caught.value)
    assert SECRET not in output(capfd)


def test_blank_ruleset_fails_before_any_request(dm_conn: DataMasqueEmulator) -> None:
    with pytest.raises(DataMasqueConfigError, match="ruleset"):
        run_operator(operator(ruleset="  "), make_context())
    assert dm_conn.journal == []


def test_valid_options_reach_the_run(dm_conn: DataMasqueEmulator) -> None:
    options = {"dry_run": True, "batch_size": "500", "run_secret": "s" * 24}
    run_operator(operator(options=options, wait_for_completion=False), make_context())
    sent = dm_conn.get_run(1)["options"]
    assert sent["dry_run"] is True and sent["batch_size"] == 500


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"poll_interval": 0}, "poll_interval"), ({"timeout": -1}, "timeout")]
)
def test_bad_wait_settings_fail_at_construction(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        operator(**kwargs)


# ---- retries reattach, never start a second run -----------------------------------------------------


def test_retry_reattaches_to_the_active_run(
    dm_conn: DataMasqueEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    first = make_context(run_id="manual__retry", try_number=1)
    assert run_operator(operator(wait_for_completion=False), first) == 1
    capfd.readouterr()

    second = make_context(run_id="manual__retry", try_number=2)
    assert run_operator(operator(), second) == 1

    text = output(capfd)
    assert dm_conn.runs_created == 1
    assert dm_conn.count_requests("POST", r"/api/runs/") == 1
    assert "Reattaching to DataMasque run 1" in text
    assert second["ti"].xcoms["run_id"] == 1
    assert dm_conn.get_run(1)["status"] == "finished"
    assert_lines_once(text, dm_conn, 1)


def test_retry_after_success_returns_the_same_run(
    dm_conn: DataMasqueEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    assert run_operator(operator(), make_context(run_id="manual__done")) == 1
    capfd.readouterr()

    assert run_operator(operator(), make_context(run_id="manual__done", try_number=2)) == 1

    assert dm_conn.runs_created == 1
    assert "already finished finished: not masking again" in output(capfd)
    assert dm_conn.count_requests("GET", r"/api/runs/1/log/") > 0


def test_retry_after_failed_run_starts_a_new_one(dm_conn: DataMasqueEmulator) -> None:
    with pytest.raises(DataMasqueRunError):
        run_operator(operator(run_name="flaky [emulator:fail]"), make_context())
    dm_conn.run_seconds = 0.5
    with pytest.raises(DataMasqueRunError):
        run_operator(operator(run_name="flaky [emulator:fail]"), make_context(try_number=2))
    assert dm_conn.runs_created == 2


def test_same_name_from_an_older_dag_run_is_not_reused(dm_conn: DataMasqueEmulator) -> None:
    dm_conn.run_seconds = 0.3
    assert run_operator(operator(run_name="fixed-name"), make_context()) == 1
    later = make_context()
    later["dag_run"].start_date = datetime.now(timezone.utc) + timedelta(minutes=10)
    assert run_operator(operator(run_name="fixed-name"), later) == 2
    assert dm_conn.runs_created == 2


# ---- giving up cancels the run ----------------------------------------------------------------------


def test_timeout_cancels_the_run(dm_conn: DataMasqueEmulator) -> None:
    started = time.monotonic()
    with pytest.raises(DataMasqueRunError, match=r"timeout reached.*run was cancelled") as caught:
        run_operator(operator(run_name="[emulator:long]", timeout=1), make_context())
    assert time.monotonic() - started < 5
    assert caught.value.status == "timeout"
    assert dm_conn.get_run(1)["status"] in ("cancelling", "cancelled")
    assert wait_run_status(dm_conn, 1, ("cancelled",)) == "cancelled"
    assert dm_conn.count_requests("POST", r"/api/runs/1/cancel/") == 1


def test_execution_timeout_budget_cancels_before_airflow_does(dm_conn: DataMasqueEmulator) -> None:
    op = operator(run_name="[emulator:long]", execution_timeout=timedelta(seconds=2))
    with pytest.raises(DataMasqueRunError, match="execution_timeout reached"):
        run_operator(op, make_context())
    assert dm_conn.get_run(1)["status"] in ("cancelling", "cancelled")


def test_interrupted_wait_cancels_the_run(
    dm_conn: DataMasqueEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Airflow's execution_timeout (or SIGTERM) lands in the middle of the wait as an exception."""
    from airflow.providers.common.compat.sdk import AirflowTaskTimeout

    from airflow_provider_datamasque.operators import runs as runs_module

    class InterruptedTime:
        def __getattr__(self, name: str) -> Any:
            return getattr(time, name)

        def sleep(self, _seconds: float) -> None:
            raise AirflowTaskTimeout("Timeout, PID: 1")

    monkeypatch.setattr(runs_module, "time", InterruptedTime())
    with pytest.raises(AirflowTaskTimeout):
        run_operator(operator(run_name="[emulator:long]"), make_context())
    monkeypatch.undo()
    assert dm_conn.get_run(1)["status"] in ("cancelling", "cancelled")
    assert dm_conn.count_requests("POST", r"/api/runs/1/cancel/") == 1


def test_on_kill_cancels_the_run(dm_conn: DataMasqueEmulator, capfd: pytest.CaptureFixture[str]) -> None:
    op = operator(run_name="[emulator:long]")
    thread, outcome = in_thread(run_operator, op, make_context())
    wait_for(lambda: dm_conn.runs_created == 1 and op.run_id == 1, what="the run to start")

    op.on_kill()
    op.on_kill()  # A second kill signal does not cancel twice.

    thread.join(timeout=15)
    assert not thread.is_alive()
    assert isinstance(outcome.get("error"), DataMasqueRunError)
    assert outcome["error"].status == "cancelled"
    assert dm_conn.get_run(1)["status"] == "cancelled"
    assert dm_conn.count_requests("POST", r"/api/runs/1/cancel/") == 1
    assert "because the Airflow task was killed" in output(capfd)


def test_on_kill_before_start_does_nothing(dm_conn: DataMasqueEmulator) -> None:
    operator().on_kill()
    assert dm_conn.journal == []


def test_lines_logged_once_with_a_long_log(
    dm_conn: DataMasqueEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    run_operator(operator(run_name="[emulator:log_lines=150]", poll_interval=0.1), make_context())
    text = output(capfd)
    lines = served_log_lines(dm_conn, 1)
    assert len(lines) > 150
    assert set(count_logged(text, lines).values()) == {1}
    # Incremental reads: after the first read, the log is fetched by byte range.
    assert dm_conn.count_requests("GET", r"/api/runs/1/log/") > 3

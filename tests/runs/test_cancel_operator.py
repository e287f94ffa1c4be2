"""DataMasqueCancelRunOperator against the emulator."""

from __future__ import annotations

import pytest

from airflow_provider_datamasque.hooks.errors import (
    DataMasqueConfigError,
    DataMasqueNotFoundError,
    DataMasqueRunError,
)
from airflow_provider_datamasque.operators.runs import DataMasqueCancelRunOperator

from ._harness import DataMasqueEmulator, make_context, start_run, wait_run_status


def output(capfd: pytest.CaptureFixture[str]) -> str:
    captured = capfd.readouterr()
    return captured.out + captured.err


def cancel(run_id: object, **kwargs: object) -> str:
    op = DataMasqueCancelRunOperator(task_id="cancel", run_id=run_id, poll_interval=0.1, **kwargs)  # type: ignore[arg-type]
    return op.execute(make_context(task_id="cancel"))


def test_cancels_an_active_run_and_waits_until_cancelled(dm_conn: DataMasqueEmulator) -> None:
    run_id = start_run("[emulator:long]")
    assert cancel(str(run_id)) == "cancelled"
    assert dm_conn.get_run(run_id)["status"] == "cancelled"
    assert dm_conn.count_requests("POST", rf"/api/runs/{run_id}/cancel/") == 1


def test_without_waiting_returns_cancelling(dm_conn: DataMasqueEmulator) -> None:
    run_id = start_run("[emulator:long]")
    assert cancel(run_id, wait_for_cancellation=False) == "cancelling"
    assert dm_conn.get_run(run_id)["status"] in ("cancelling", "cancelled")


@pytest.mark.parametrize("final", ["finished", "failed", "cancelled", "finished_with_warnings"])
def test_terminal_run_is_left_alone(
    dm_conn: DataMasqueEmulator, capfd: pytest.CaptureFixture[str], final: str
) -> None:
    run_id = start_run("[emulator:long]")
    dm_conn.set_run_status(run_id, final)
    wait_run_status(dm_conn, run_id, (final,))
    assert cancel(run_id) == final
    assert dm_conn.count_requests("POST", rf"/api/runs/{run_id}/cancel/") == 0
    assert f"DataMasque run {run_id} already ended {final}; nothing to cancel." in output(capfd)


def test_unknown_run_is_a_clear_error(dm_conn: DataMasqueEmulator) -> None:
    with pytest.raises(DataMasqueNotFoundError, match="DataMasque run 999 does not exist") as caught:
        cancel("999")
    assert caught.value.status == 404
    assert dm_conn.count_requests("POST", r".*/cancel/") == 0


@pytest.mark.parametrize("bad", ["abc", "", "{{ ti.xcom_pull('mask') }}", None])
def test_bad_run_id_fails_before_any_request(dm_conn: DataMasqueEmulator, bad: object) -> None:
    with pytest.raises(DataMasqueConfigError, match="run_id must be a DataMasque run id"):
        cancel(bad)
    assert dm_conn.journal == []


def test_gives_up_when_the_cancel_takes_too_long(dm_conn: DataMasqueEmulator) -> None:
    run_id = start_run("[emulator:long]")
    dm_conn.run_seconds = 10.0  # the emulator then takes 1 s to go from cancelling to cancelled
    with pytest.raises(DataMasqueRunError, match=f"run {run_id} is still cancelling after") as caught:
        cancel(run_id, timeout=0.3)
    assert caught.value.status == "cancelling"
    assert wait_run_status(dm_conn, run_id, ("cancelled",)) == "cancelled"

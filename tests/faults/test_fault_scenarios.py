"""Fault-injection scenarios: a masking run under an unreliable DataMasque.

Every scenario checks the same three promises:

1. exactly one masking run is created on DataMasque (``emu.runs_created == 1``);
2. the task's outcome matches the run's final status;
3. every line of the run log reached the task log exactly once.

The operator runs in the worker (``sync``) or through its trigger (``deferrable``: ``execute``
defers, the trigger is serialized, rebuilt and run as the triggerer would, then
``execute_complete`` resumes), against the emulator with seeded faults.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

try:
    from tests.runs import _harness as h
except ImportError:  # pragma: no cover - tests/ not a package: its subfolders are top-level
    from runs import _harness as h  # type: ignore[no-redef]

from airflow_provider_datamasque.emulator import DataMasqueEmulator, FaultConfig
from airflow_provider_datamasque.hooks.errors import DataMasqueRunError
from airflow_provider_datamasque.operators.runs import DataMasqueRunOperator

MODES = ["sync", "deferrable"]
#: Only the wait: reads of the run and of its log (the start itself stays clean).
WAIT_ONLY = r"^GET /api/runs/\d+/(log/)?$"
OUTCOME = {"finished": None, "finished_with_warnings": None, "failed": "failed", "cancelled": "cancelled"}


def output(capfd: pytest.CaptureFixture[str]) -> str:
    captured = capfd.readouterr()
    return captured.out + captured.err


def operator(mode: str, **kwargs: Any) -> DataMasqueRunOperator:
    params: dict[str, Any] = {
        "task_id": "mask",
        "source_connection": "pg",
        "ruleset": "rs",
        "run_name": "scenario [emulator:log_lines=5]",
        "poll_interval": 0.2,
        "deferrable": mode == "deferrable",
    }
    return DataMasqueRunOperator(**(params | kwargs))


def execute(op: DataMasqueRunOperator) -> tuple[int | None, BaseException | None]:
    try:
        return h.run_operator(op, h.make_context()), None
    except Exception as exc:
        return None, exc


def check_scenario(
    emu: DataMasqueEmulator, text: str, result: int | None, error: BaseException | None
) -> dict[str, Any]:
    """The three promises; returns the run."""
    assert emu.runs_created == 1, f"{emu.runs_created} runs created"
    run = emu.get_run(1)
    expected_error = OUTCOME[run["status"]]
    if expected_error is None:
        assert error is None, f"run {run['status']} but the task failed: {error!r}"
        assert result == 1
    else:
        assert isinstance(error, DataMasqueRunError), f"run {run['status']}, task raised {error!r}"
        assert error.status == expected_error and error.run_id == 1
    h.assert_lines_once(text, emu, 1)
    return run


def faults_seen(emu: DataMasqueEmulator) -> dict[str, int]:
    seen: dict[str, int] = {}
    for entry in emu.journal:
        if entry.fault:
            seen[entry.fault] = seen.get(entry.fault, 0) + 1
    return seen


# ---- 1. errors and dropped connections --------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_errors_and_drops_during_the_wait(
    dm_conn: DataMasqueEmulator, capfd: pytest.CaptureFixture[str], mode: str
) -> None:
    dm_conn.set_faults(FaultConfig(error_rate=0.2, drop_rate=0.05, path_pattern=WAIT_ONLY, seed=20240601))
    result, error = execute(operator(mode))
    text = output(capfd)
    seen = faults_seen(dm_conn)
    run = check_scenario(dm_conn, text, result, error)
    assert run["status"] == "finished"
    assert sum(seen.values()) >= 2, seen
    assert dm_conn.count_requests("POST", r"/api/runs/") == 1


def execute_with_retries(
    make_op: Callable[[], DataMasqueRunOperator], capfd: pytest.CaptureFixture[str], retries: int = 8
) -> tuple[int | None, BaseException | None, list[str]]:
    """Try the task like Airflow would with ``retries``: same task instance, fresh operator each
    try, until it succeeds or fails because of the run itself. Returns the output of each try."""
    outputs = []
    for try_number in range(1, retries + 2):
        try:
            result, error = h.run_operator(make_op(), h.make_context(try_number=try_number)), None
        except Exception as exc:
            result, error = None, exc
        outputs.append(output(capfd))
        if error is None or isinstance(error, DataMasqueRunError):
            break
    return result, error, outputs


@pytest.mark.parametrize("mode", MODES)
def test_errors_and_drops_on_every_request(
    dm_conn: DataMasqueEmulator, capfd: pytest.CaptureFixture[str], mode: str
) -> None:
    """Including login, the name lookups and the start request itself.

    Lookups (GET) are retried on 500 and gateway errors, but faults can outlast the client's
    retries and fail a try, so this scenario runs the task with retries, as a DAG would: a retry
    either starts the run or reattaches to the one an earlier try started, never a second one.
    """
    dm_conn.set_faults(FaultConfig(error_rate=0.2, drop_rate=0.05, seed=7))
    result, error, outputs = execute_with_retries(lambda: operator(mode), capfd)
    seen = faults_seen(dm_conn)
    run = check_scenario(dm_conn, outputs[-1], result, error)
    assert run["status"] == "finished"
    assert sum(seen.values()) >= 2, seen
    lines = h.served_log_lines(dm_conn, 1)
    for earlier in outputs[:-1]:  # an earlier try may have logged some lines, each at most once
        assert max(h.count_logged(earlier, lines).values()) <= 1


@pytest.mark.parametrize("mode", ["poke", "reschedule"])
def test_sensor_pokes_through_errors_and_drops(
    dm_conn: DataMasqueEmulator, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """The sensor watching a run under the same faults; in reschedule mode every poke is a new
    sensor object (a new process), carrying on from the stored cursor."""
    from airflow_provider_datamasque.sensors.runs import DataMasqueRunSensor

    variables = h.FakeVariables().install(monkeypatch)
    saved: list[int] = []
    key = "datamasque_sensor_cursor.dm_dag.watch.manual__test.-1"
    run_id = h.start_run("watched [emulator:log_lines=5]")
    dm_conn.set_faults(FaultConfig(error_rate=0.2, drop_rate=0.05, path_pattern=WAIT_ONLY, seed=5))
    context = h.make_context(task_id="watch")
    sensor = None
    pokes = 0
    while True:
        if sensor is None or mode == "reschedule":
            sensor = DataMasqueRunSensor(
                task_id="watch", run_id=run_id, poke_interval=0.2, deferrable=False, mode=mode
            )
        pokes += 1
        if sensor.poke(context):
            break
        saved.append(json.loads(variables.store[key])["cursor"]["count"] if key in variables.store else 0)
        assert pokes < 100
        time.sleep(0.2)
    text = output(capfd)
    assert pokes > 2
    assert dm_conn.runs_created == 1
    assert dm_conn.get_run(run_id)["status"] == "finished"
    assert sum(faults_seen(dm_conn).values()) >= 1
    if mode == "reschedule":  # each poke (a new process) left the cursor for the next one
        assert saved[-1] > 0 and saved == sorted(saved), saved
    else:  # in-process pokes save at most every cursor_save_interval (10 s): not in this short run
        assert saved == [0] * len(saved)
    h.assert_lines_once(text, dm_conn, run_id)


# ---- 2. throttling ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_rate_limited_with_retry_after(
    dm_conn: DataMasqueEmulator, capfd: pytest.CaptureFixture[str], mode: str
) -> None:
    dm_conn.set_faults(FaultConfig(rate_limit_rate=0.3, retry_after=0.2, seed=3))
    result, error = execute(operator(mode))
    text = output(capfd)
    journal = dm_conn.journal
    run = check_scenario(dm_conn, text, result, error)
    assert run["status"] == "finished"
    throttled = [i for i, entry in enumerate(journal) if entry.fault == "rate_limit"]
    assert throttled
    # Retry-After is honoured: the next request comes no sooner than it asked.
    for i in throttled:
        if i + 1 < len(journal):
            assert journal[i + 1].time - journal[i].time >= 0.15


# ---- 3. token expiry ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_token_expires_mid_run(
    dm_conn: DataMasqueEmulator, capfd: pytest.CaptureFixture[str], mode: str
) -> None:
    dm_conn.set_faults(FaultConfig(token_expiry_after=5))
    result, error = execute(operator(mode))
    text = output(capfd)
    run = check_scenario(dm_conn, text, result, error)
    assert run["status"] == "finished"
    assert dm_conn.count_requests("POST", r"/api/auth/token/login/") >= 2
    assert any(entry.status == 401 for entry in dm_conn.journal)


# ---- 4. DataMasque restarts ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_restart_window_while_the_run_runs(
    dm_conn: DataMasqueEmulator, capfd: pytest.CaptureFixture[str], mode: str
) -> None:
    dm_conn.run_seconds = 3.0
    thread, outcome = h.in_thread(execute, operator(mode))
    h.wait_for(lambda: dm_conn.runs_created == 1, what="the run to start")
    dm_conn.unavailable(2)
    thread.join(timeout=30)
    assert not thread.is_alive()
    result, error = outcome["result"]
    text = output(capfd)
    assert faults_seen(dm_conn).get("unavailable", 0) >= 2
    run = check_scenario(dm_conn, text, result, error)
    assert run["status"] == "finished"
    assert "DataMasque unreachable while" in text


# ---- 5. the start response is lost ----------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_start_response_lost(
    dm_conn: DataMasqueEmulator,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    mode: str,
) -> None:
    dm_conn.set_faults(FaultConfig(drop_run_start_responses=1))
    with caplog.at_level(logging.INFO, logger="airflow_provider_datamasque"):
        result, error = execute(operator(mode))
    text = output(capfd)
    run = check_scenario(dm_conn, text, result, error)
    assert run["status"] == "finished"
    starts = [e for e in dm_conn.journal if e.method == "POST" and e.path == "/api/runs/"]
    assert [e.dropped for e in starts] == [True], "the start is never re-sent once the run exists"
    assert "got no clear answer" in caplog.text + text  # it looked the run up instead of re-sending


# ---- 6. the worker is SIGKILLed mid-wait -------------------------------------------------------------


def run_dag_at(dag: Any, when: datetime) -> Any:
    """``dag.test()`` for one logical date, so a second call is the same DAG run again.

    Airflow 3 names that run by logical date and ``run_after``; Airflow 2 by ``execution_date``.
    """
    import inspect

    if "logical_date" in inspect.signature(dag.test).parameters:
        return dag.test(logical_date=when, run_after=when)
    return dag.test(execution_date=when)


_CHILD = f"""
import importlib.util, sys
from datetime import datetime
from typing import Any
spec = importlib.util.spec_from_file_location("killed_dag", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
sys.path.insert(0, sys.argv[3])
from tests.airflow_logging import set_up_task_logging  # the same task logging as the test process
set_up_task_logging()
{inspect.getsource(run_dag_at)}
run_dag_at(module.dag, datetime.fromisoformat(sys.argv[2]))
"""


def test_sigkill_while_waiting_then_retry_reattaches(
    dm_conn: DataMasqueEmulator,
    dag_factory: Callable[..., Any],
    capfd: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    dm_conn.run_seconds = 60.0  # finished below, once the retry is waiting on it
    dag = dag_factory(
        [
            h.task_source(
                "mask",
                "DataMasqueRunOperator",
                task_id="mask",
                source_connection="pg",
                ruleset="rs",
                poll_interval=0.3,
                deferrable=False,
            )
        ]
    )
    logical_date = datetime.now(timezone.utc).replace(microsecond=0)
    child_log = tmp_path / "child.log"
    with child_log.open("wb") as sink:
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _CHILD,
                dag.fileloc,
                logical_date.isoformat(),
                str(Path(__file__).resolve().parents[2]),
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=dict(os.environ),
        )
        try:
            h.wait_for(
                lambda: dm_conn.runs_created == 1 and dm_conn.count_requests("GET", r"/api/runs/1/log/") >= 2,
                timeout=60,
                what="the child to start the run and stream its log",
            )
            assert dm_conn.get_run(1)["status"] in ("queued", "validating", "running")
            os.kill(child.pid, signal.SIGKILL)
            assert child.wait(timeout=10) == -signal.SIGKILL
        finally:
            if child.poll() is None:
                child.kill()
    assert dm_conn.get_run(1)["status"] not in ("cancelling", "cancelled")
    child_text = child_log.read_text(errors="replace")
    assert "Started DataMasque run 1" in child_text
    capfd.readouterr()

    log_reads = dm_conn.count_requests("GET", r"/api/runs/1/log/")

    def finish_once_the_retry_waits() -> None:
        h.wait_for(
            lambda: dm_conn.count_requests("GET", r"/api/runs/1/log/") >= log_reads + 2,
            timeout=60,
            what="the retry to wait on the run",
        )
        dm_conn.set_run_status(1, "finished")

    finisher = threading.Thread(target=finish_once_the_retry_waits, daemon=True)
    finisher.start()
    # The same task instance again: same DAG run (run id from logical date and run_after).
    dag_run = run_dag_at(dag, logical_date)
    finisher.join(timeout=5)
    text = output(capfd)

    assert h.ti_states(dag_run) == {"mask": "success"}
    assert dm_conn.runs_created == 1
    assert dm_conn.count_requests("POST", r"/api/runs/") == 1
    assert "Reattaching to DataMasque run 1" in text
    assert h.xcom(dag_run, "mask") == 1
    assert dm_conn.get_run(1)["status"] == "finished"
    lines = h.assert_lines_once(text, dm_conn, 1)
    killed_try = h.count_logged(child_text, lines)
    logged_by_killed_try = sum(1 for n in killed_try.values() if n)  # distinct lines (dag.test may echo)
    assert 1 <= logged_by_killed_try < len(lines), "the killed try logged the start of the log"
    assert max(killed_try.values()) == 1


# ---- 7. execution_timeout while deferred --------------------------------------------------------------


def test_execution_timeout_while_deferred_cancels_the_run(
    dm_conn: DataMasqueEmulator, dag_factory: Callable[..., Any], capfd: pytest.CaptureFixture[str]
) -> None:
    dag = dag_factory(
        [
            h.task_source(
                "mask",
                "DataMasqueRunOperator",
                task_id="mask",
                source_connection="pg",
                ruleset="rs",
                run_name="slow [emulator:long]",
                poll_interval=0.3,
                deferrable=True,
                execution_timeout=timedelta(seconds=3),
            )
        ]
    )
    dag_run = dag.test()
    text = output(capfd)

    assert h.ti_states(dag_run) == {"mask": "failed"}
    assert dm_conn.runs_created == 1
    assert h.wait_run_status(dm_conn, 1, ("cancelled",)) == "cancelled"
    assert dm_conn.count_requests("POST", r"/api/runs/1/cancel/") == 1
    # Lines up to the cancellation were logged once each while deferred; none twice.
    lines = h.served_log_lines(dm_conn, 1)
    before_cancel = lines[: next(i for i, line in enumerate(lines) if "Cancellation requested" in line)]
    counts = h.count_logged(text, lines)
    assert before_cancel and all(counts[line] == 1 for line in before_cancel)
    assert max(counts.values()) == 1


# ---- 8. how the run ends --------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("marker", "final"), [("[emulator:fail]", "failed"), ("[emulator:warnings]", "finished_with_warnings")]
)
def test_run_ends_failed_or_with_warnings(
    dm_conn: DataMasqueEmulator, capfd: pytest.CaptureFixture[str], mode: str, marker: str, final: str
) -> None:
    dm_conn.set_faults(FaultConfig(error_rate=0.1, path_pattern=WAIT_ONLY, seed=99))
    result, error = execute(operator(mode, run_name=f"ending {marker}"))
    text = output(capfd)
    run = check_scenario(dm_conn, text, result, error)
    assert run["status"] == final
    if final == "failed":
        quoted = str(error).split("Last log lines (errors first):\n", 1)[1].splitlines()
        assert "ERROR:" in quoted[0]


@pytest.mark.parametrize("mode", MODES)
def test_run_cancelled_by_someone_else(
    dm_conn: DataMasqueEmulator, capfd: pytest.CaptureFixture[str], mode: str
) -> None:
    dm_conn.run_seconds = 3.0

    def cancel_when_running() -> None:
        h.wait_for(lambda: dm_conn.runs_created == 1, what="the run to start")
        h.wait_run_status(dm_conn, 1, ("running",))
        time.sleep(0.3)
        dm_conn.set_run_status(1, "cancelled")

    canceller = threading.Thread(target=cancel_when_running, daemon=True)
    canceller.start()
    result, error = execute(operator(mode))
    canceller.join(timeout=5)
    text = output(capfd)
    run = check_scenario(dm_conn, text, result, error)
    assert run["status"] == "cancelled"
    assert "ended cancelled" in str(error)
    assert dm_conn.count_requests("POST", r"/api/runs/1/cancel/") == 0, "nobody else's cancel is repeated"

"""Session-wide test set-up: a private AIRFLOW_HOME with a SQLite metadata DB.

The environment is set at import time, before anything imports Airflow, so every test (and
every ``dag.test()``) uses the same throw-away home and DAGs folder.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_HOME = Path(os.environ.get("DATAMASQUE_TEST_AIRFLOW_HOME") or tempfile.mkdtemp(prefix="dm-airflow-home-"))
_DAGS = _HOME / "dags"
_DAGS.mkdir(parents=True, exist_ok=True)
os.environ["AIRFLOW_HOME"] = str(_HOME)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(_DAGS)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO")
os.environ.pop("AIRFLOW_CONN_DATAMASQUE_DEFAULT", None)

REPO = Path(__file__).resolve().parent.parent
_db_ready = False


def ensure_airflow_db() -> None:
    """Create the SQLite metadata DB once per session (``airflow db migrate``)."""
    global _db_ready
    if _db_ready:
        return
    airflow = Path(sys.executable).with_name("airflow")
    subprocess.run(
        [str(airflow), "db", "migrate"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=os.environ.copy(),
    )
    _db_ready = True
    # Airflow 2.11: DAG run notes refer to FAB's ab_user table; clearing a DAG run (dag.test() of the
    # same logical date twice) needs that model loaded, as Airflow's webserver and CLI have it.
    with contextlib.suppress(ImportError):
        import airflow.providers.fab.auth_manager.models


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """The initialised AIRFLOW_HOME; request it in tests that run DAGs."""
    ensure_airflow_db()
    return _HOME


@pytest.fixture(scope="session")
def dags_folder() -> Path:
    return _DAGS


@pytest.fixture
def dm_emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """A fresh emulator with ``datamasque_default`` pointing at it."""
    from airflow_provider_datamasque.emulator import DataMasqueEmulator

    with DataMasqueEmulator(run_seconds=1.0) as emu:
        monkeypatch.setenv("AIRFLOW_CONN_DATAMASQUE_DEFAULT", emu.connection_json())
        yield emu


@pytest.fixture(scope="session", autouse=True)
def _task_logs_as_a_task_process_has_them() -> None:
    """One masked copy of each task log record on stdout, on every supported Airflow line."""
    from tests.airflow_logging import set_up_task_logging

    set_up_task_logging()


@pytest.fixture(scope="session", autouse=True)
def _reschedule_dates_as_datetimes() -> None:
    """Airflow 3.0's in-process ``dag.test()`` hands a rescheduled sensor its first reschedule date
    as an ISO string, so ``BaseSensorOperator.execute`` fails with a TypeError on the second poke
    after a reschedule (any sensor, not only ours; real task processes get a datetime). Parse it
    here, as later Airflow lines do, so reschedule-mode tests run on 3.0 too."""
    import airflow

    if not airflow.__version__.startswith("3.0."):
        return
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance
    from airflow.utils import timezone

    original = RuntimeTaskInstance.get_first_reschedule_date

    def get_first_reschedule_date(self: Any, context: Any) -> Any:
        value = original(self, context)
        return timezone.parse(value) if isinstance(value, str) else value

    RuntimeTaskInstance.get_first_reschedule_date = get_first_reschedule_date  # type: ignore[method-assign]

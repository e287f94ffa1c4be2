"""Session-wide test set-up: a private AIRFLOW_HOME with a SQLite metadata DB.

The environment is set at import time, before anything imports Airflow, so every test (and
every ``dag.test()``) uses the same throw-away home and DAGs folder.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

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


def _stream_handlers() -> list[tuple[logging.Logger, logging.Handler]]:
    loggers = [logging.getLogger()] + [
        logger for logger in logging.Logger.manager.loggerDict.values() if isinstance(logger, logging.Logger)
    ]
    return [(logger, handler) for logger in loggers for handler in logger.handlers]


@pytest.fixture(autouse=True)
def _drop_handlers_on_captured_streams() -> Iterator[None]:
    """Remove console handlers a test added on pytest's per-test stdout/stderr.

    Airflow 2.11 and 3.0's ``dag.test()`` add a ``StreamHandler(sys.stdout)`` to the task logger
    once per process. Under ``capfd`` that stream is the test's capture file, closed when the test
    ends, so every later test would log into a closed file ("I/O operation on closed file") and
    lose its task log. Dropping the handler lets the next ``dag.test()`` add one on its own stdout.
    """
    before = {id(handler) for _, handler in _stream_handlers()}
    yield
    for logger, handler in _stream_handlers():
        if (
            id(handler) not in before
            and type(handler) is logging.StreamHandler
            and handler.stream not in (sys.__stdout__, sys.__stderr__)
        ):
            logger.removeHandler(handler)

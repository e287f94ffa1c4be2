"""Shared harness for the masking-run tests (``tests/runs``) and fault scenarios (``tests/faults``).

``tests/conftest.py`` gives the session a private ``AIRFLOW_HOME`` (SQLite DB, DAGs folder)
before Airflow is imported; this harness uses it. Run without that conftest, importing this
module sets up the same kind of home itself (re-pointing Airflow's settings if Airflow was
already imported).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path


def _configure_airflow_env() -> Path:
    dags = os.environ.get("AIRFLOW__CORE__DAGS_FOLDER")
    home = os.environ.get("AIRFLOW_HOME")
    if dags and home and Path(dags).parent == Path(home) and Path(dags).is_dir():
        return Path(home)  # tests/conftest.py (or an earlier import of this module) set it up
    new_home = Path(tempfile.mkdtemp(prefix="dm-airflow-home-"))
    (new_home / "dags").mkdir()
    os.environ.update(
        {
            "AIRFLOW_HOME": str(new_home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(new_home / "dags"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{new_home / 'airflow.db'}",
        }
    )
    if "airflow.settings" in sys.modules:  # Too late for the environment alone: re-point settings.
        from airflow import settings

        settings.configure_vars()
        settings.reconfigure_orm()
    return new_home


AIRFLOW_TEST_HOME = _configure_airflow_env()
DAGS_FOLDER = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])

# ---- everything below may import Airflow ----------------------------------------------------------

import asyncio  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from typing import Any  # noqa: E402

from airflow_provider_datamasque.emulator import DataMasqueEmulator  # noqa: E402
from airflow_provider_datamasque.emulator.samples import MASK_RULESET_YAML as MASK_YAML  # noqa: E402
from airflow_provider_datamasque.emulator.samples import POSTGRES_CONNECTION  # noqa: E402

CONN_ENV = "AIRFLOW_CONN_DATAMASQUE_DEFAULT"
#: Its own database password, so the secret scans can tell it from the other samples'.
PG = POSTGRES_CONNECTION | {"dbpassword": "s3cret-db-pass"}
#: Fast client retries so injected faults cost milliseconds, not seconds.
FAST_EXTRA: dict[str, Any] = {"max_retries": 6, "retry_backoff": 0.05, "retry_max_wait": 0.5}
TERMINAL = ("finished", "finished_with_warnings", "failed", "cancelled")


def seed(emu: DataMasqueEmulator, conn_name: str = "pg", ruleset_name: str = "rs") -> tuple[str, str]:
    """A postgres connection and a valid ruleset on the emulator; returns their ids."""
    conn = emu.create_connection(**(PG | {"name": conn_name}))
    ruleset = emu.create_ruleset(ruleset_name, MASK_YAML)
    return conn["id"], ruleset["id"]


def conn_json(emu: DataMasqueEmulator, **extra: Any) -> str:
    """``emu.connection_json()`` with fast retries (and any other extras) added."""
    conn = json.loads(emu.connection_json())
    conn["extra"] = {**FAST_EXTRA, **extra}
    return json.dumps(conn)


def start_run(name: str, connection: str = "pg", ruleset: str = "rs") -> int:
    """Start a run through the hook (as another DAG or a person would); returns its id."""
    from airflow_provider_datamasque.hooks.datamasque import DataMasqueHook

    hook = DataMasqueHook()
    try:
        return int(hook.start_run(connection=connection, ruleset=ruleset, name=name)["id"])
    finally:
        hook.close()


# ---- a task instance without Airflow --------------------------------------------------------------


@dataclass
class FakeTI:
    """Just enough of a task instance for ``execute``: ids and a recording ``xcom_push``."""

    dag_id: str = "dm_dag"
    task_id: str = "mask"
    run_id: str = "manual__test"
    map_index: int = -1
    try_number: int = 1
    xcoms: dict[str, Any] = field(default_factory=dict)

    def xcom_push(self, key: str, value: Any, **_: Any) -> None:
        self.xcoms[key] = value


class FakeVariables:
    """Airflow Variables (get/set/delete) in a dict: the cursor an earlier try leaves for a retry."""

    def __init__(self) -> None:
        self.store: dict[str, str] = {}

    def install(self, monkeypatch: pytest.MonkeyPatch) -> FakeVariables:
        import airflow.providers.common.compat.sdk as sdk

        store = self.store

        class Variable:
            @staticmethod
            def get(key: str, default: Any = None) -> Any:
                return store.get(key, default)

            @staticmethod
            def set(key: str, value: str) -> None:
                store[key] = value

            @staticmethod
            def delete(key: str) -> None:
                store.pop(key, None)

        monkeypatch.setattr(sdk, "Variable", Variable, raising=False)
        return self


@dataclass
class FakeDagRun:
    run_id: str
    start_date: datetime
    queued_at: datetime | None = None


def make_context(
    task_id: str = "mask", dag_id: str = "dm_dag", run_id: str = "manual__test", try_number: int = 1
) -> dict[str, Any]:
    ti = FakeTI(dag_id=dag_id, task_id=task_id, run_id=run_id, try_number=try_number)
    return {
        "ti": ti,
        "task_instance": ti,
        "run_id": run_id,
        "dag_run": FakeDagRun(run_id=run_id, start_date=datetime.now(timezone.utc)),
    }


def run_trigger(trigger: Any) -> Any:
    """Run a trigger to its first event (as the triggerer would) and return the event payload."""

    async def first_event() -> Any:
        async for event in trigger.run():
            return event.payload
        return None

    return asyncio.run(first_event())


def run_operator(op: Any, context: dict[str, Any]) -> Any:
    """``op.execute``; if it defers, round-trip the trigger through serialize, run it, then resume."""
    from airflow.providers.common.compat.sdk import TaskDeferred

    try:
        return op.execute(context)
    except TaskDeferred as deferred:
        classpath, kwargs = deferred.trigger.serialize()
        module, _, name = classpath.rpartition(".")
        trigger = getattr(importlib.import_module(module), name)(**json.loads(json.dumps(kwargs)))
        event = run_trigger(trigger)
        return getattr(op, deferred.method_name)(context, event=event)


def wait_for(predicate: Any, timeout: float = 15.0, interval: float = 0.05, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def wait_run_status(
    emu: DataMasqueEmulator, run_id: int, statuses: tuple[str, ...], timeout: float = 15.0
) -> str:
    return wait_for(
        lambda: emu.get_run(run_id)["status"] if emu.get_run(run_id)["status"] in statuses else None,
        timeout,
        what=f"run {run_id} to reach {statuses}",
    )


def executor_safeguard() -> Any:
    """The class behind the "execute cannot be called outside the task runner" check."""
    try:
        from airflow.sdk.bases.operator import ExecutorSafeguard
    except ImportError:  # Airflow 2
        from airflow.models.baseoperator import ExecutorSafeguard  # type: ignore[no-redef]
    return ExecutorSafeguard


def in_thread(func: Any, *args: Any, **kwargs: Any) -> tuple[threading.Thread, dict[str, Any]]:
    """Start ``func`` in a daemon thread; the dict gets ``result`` or ``error`` when it ends."""
    outcome: dict[str, Any] = {}
    sentinel = getattr(executor_safeguard(), "_sentinel", None)

    def target() -> None:
        # Airflow 2.11's safeguard keeps a thread-local that only the importing thread has set up.
        if sentinel is not None and not hasattr(sentinel, "callers"):
            sentinel.callers = {}
        try:
            outcome["result"] = func(*args, **kwargs)
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcome


# ---- run-log lines in the task log ----------------------------------------------------------------


def served_log_lines(emu: DataMasqueEmulator, run_id: int) -> list[str]:
    """The run log as the hook reads it (faults cleared), each entry formatted as the task logs it."""
    from airflow_provider_datamasque.hooks.datamasque import DataMasqueHook
    from airflow_provider_datamasque.hooks.runs import format_log_entry

    emu.clear_faults()
    emu.unavailable(0)
    hook = DataMasqueHook()
    try:
        return [format_log_entry(entry)[1] for entry in hook.get_run_log(run_id)]
    finally:
        hook.close()


def level_prefix(level: str) -> str:
    """Regex for the level prefix of a log record at ``level`` (a regex of level names).

    Two formats reach the captured output: structlog's ``[info     ] `` (the task runner of
    Airflow 3.1+) and the stdlib ``{file.py:12} INFO - `` (Airflow 2.11 and 3.0, and ``execute``
    called outside a task runner).
    """
    return rf"(?:\[{level.lower()}\s*\] |\{{[^}}\n]*\}} {level.upper()} - )"


_LEVELS = level_prefix("(?:debug|info|warning|error|critical)")


def count_logged(output: str, texts: list[str]) -> Counter[str]:
    """How often each text appears as a log record (not inside a traceback or error message)."""
    counts: Counter[str] = Counter()
    for text in dict.fromkeys(texts):
        counts[text] = len(re.findall(_LEVELS + re.escape(text) + r"(?=\s|$)", output, re.MULTILINE))
    return counts


def assert_lines_once(output: str, emu: DataMasqueEmulator, run_id: int, tries: int = 1) -> list[str]:
    """Every line the run log holds reached the captured task log exactly ``tries`` times."""
    lines = served_log_lines(emu, run_id)
    assert lines, f"run {run_id} has an empty log"
    counts = count_logged(output, lines)
    wrong = {text: n for text, n in counts.items() if n != tries * lines.count(text)}
    assert not wrong, f"log lines not logged exactly {tries}x: {wrong}"
    return lines


# ---- fixtures (imported by name into tests/runs and tests/faults conftests) ----------------------

import itertools  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402

import pytest  # noqa: E402

_dag_counter = itertools.count(1)


@pytest.fixture
def emu() -> Iterator[DataMasqueEmulator]:
    """A fresh emulator with a 1.5 s run time, a ``pg`` connection and an ``rs`` ruleset."""
    with DataMasqueEmulator(run_seconds=1.5, seed=11) as emulator:
        seed(emulator)
        yield emulator


@pytest.fixture
def dm_conn(emu: DataMasqueEmulator, monkeypatch: pytest.MonkeyPatch) -> DataMasqueEmulator:
    """``datamasque_default`` points at the emulator (fast client retries)."""
    monkeypatch.setenv(CONN_ENV, conn_json(emu))
    return emu


@pytest.fixture(autouse=True)
def _executor_safeguard(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests call ``execute`` directly; do not warn that it ran outside the task runner."""
    monkeypatch.setattr(executor_safeguard(), "test_mode", True)


@pytest.fixture(scope="session")
def dm_airflow_db(request: pytest.FixtureRequest) -> Path:
    """The metadata DB: ``tests/conftest.py``'s ``airflow_db`` when there is one, else our own."""
    try:
        return Path(request.getfixturevalue("airflow_db"))
    except pytest.FixtureLookupError:
        ensure_db()
        return AIRFLOW_TEST_HOME


@pytest.fixture
def dag_factory(dm_airflow_db: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., Any]]:
    """Write a DAG file into the DAGs folder and import it; ``make(...)`` returns the DAG.

    The files are removed afterwards, so later ``dag.test()`` calls parse only their own DAG.
    """
    written: list[Path] = []

    def make(tasks: list[str], deps: list[str] = (), dag_id: str | None = None) -> Any:
        name = dag_id or f"dm_{request.node.name.split('[')[0][:40]}_{next(_dag_counter)}"
        path = write_dag(name, tasks, list(deps))
        written.append(path)
        return load_dag(path)

    yield make
    for path in written:
        path.unlink(missing_ok=True)


# ---- DAGs run with dag.test() ---------------------------------------------------------------------

_DB_READY = False


def ensure_db() -> None:
    """Create the metadata DB once per process (a fresh SQLite file: create, not migrate)."""
    global _DB_READY
    if _DB_READY:
        return
    from airflow.utils.db import initdb

    initdb()
    _DB_READY = True


DAG_TEMPLATE = '''"""Generated by tests/runs/_harness.py; no side effects at import."""
import datetime

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_datamasque.operators.runs import DataMasqueRunOperator, DataMasqueCancelRunOperator
from airflow_provider_datamasque.sensors.runs import DataMasqueRunSensor

with DAG(
    {dag_id!r},
    schedule=None,
    start_date=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc),
    catchup=False,
) as dag:
{tasks}
'''


def task_source(var: str, cls: str, **kwargs: Any) -> str:
    """One ``var = Cls(**kwargs)`` line for a generated DAG file (kwargs written as literals)."""
    args = ", ".join(f"{key}={_literal(value)}" for key, value in kwargs.items())
    return f"    {var} = {cls}({args})"


def mask_task_source(**kwargs: Any) -> str:
    """A ``mask`` DataMasqueRunOperator on the seeded ``pg`` connection and ``rs`` ruleset."""
    params = {"task_id": "mask", "source_connection": "pg", "ruleset": "rs"} | kwargs
    return task_source(str(params["task_id"]), "DataMasqueRunOperator", **params)


def _literal(value: Any) -> str:
    from datetime import timedelta

    if isinstance(value, timedelta):
        return f"datetime.timedelta(seconds={value.total_seconds()!r})"
    return repr(value)


def write_dag(dag_id: str, tasks: list[str], deps: list[str] = ()) -> Path:
    path = DAGS_FOLDER / f"{dag_id}.py"
    body = "\n".join(list(tasks) + [f"    {dep}" for dep in deps])
    path.write_text(DAG_TEMPLATE.format(dag_id=dag_id, tasks=body))
    return path


def load_dag(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(f"dm_test_dag_{path.stem}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


def ti_states(dag_run: Any) -> dict[str, str]:
    return {
        ti.task_id: str(ti.state.value if hasattr(ti.state, "value") else ti.state)
        for ti in dag_run.get_task_instances()
    }


def xcom(dag_run: Any, task_id: str, key: str = "return_value") -> Any:
    try:
        from airflow.models.xcom import XComModel

        def deserialize(row: Any) -> Any:
            return XComModel.deserialize_value(row)

    except ImportError:  # Airflow 2: the table model is XCom, and rows deserialize themselves on load
        from airflow.models.xcom import XCom as XComModel  # type: ignore[no-redef]

        def deserialize(row: Any) -> Any:
            return row.value

    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id, task_id=task_id, key=key)
            .one_or_none()
        )
        return None if row is None else deserialize(row)


def cursor_variables() -> dict[str, str]:
    """The provider's log-cursor Variables in the Airflow metadata DB (operator and sensor), by key."""
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session

    with create_session() as session:
        return {
            v.key: v.val
            for v in session.query(Variable)
            if v.key.startswith(("datamasque_run_cursor.", "datamasque_sensor_cursor."))
        }


__all__ = [
    "AIRFLOW_TEST_HOME",
    "CONN_ENV",
    "DAGS_FOLDER",
    "MASK_YAML",
    "PG",
    "TERMINAL",
    "DataMasqueEmulator",
    "FakeTI",
    "_executor_safeguard",
    "assert_lines_once",
    "conn_json",
    "count_logged",
    "cursor_variables",
    "dag_factory",
    "dm_airflow_db",
    "dm_conn",
    "emu",
    "ensure_db",
    "in_thread",
    "level_prefix",
    "load_dag",
    "make_context",
    "run_operator",
    "run_trigger",
    "seed",
    "served_log_lines",
    "start_run",
    "task_source",
    "ti_states",
    "wait_for",
    "wait_run_status",
    "write_dag",
    "xcom",
]

"""No secret reaches task logs, XCom, rendered template fields or exception text."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.test_example_dags import example  # noqa: F401  (fixture)

RUN_SECRET = "Run-Secret-That-Is-Long-Enough-9f2c"
DB_PASSWORD = "Staging-Db-Pw-77"


def _scan_db(home: Path, secrets: list[str]) -> list[str]:
    hits = []
    with sqlite3.connect(home / "airflow.db") as db:
        for table, column in (("xcom", "value"), ("rendered_task_instance_fields", "rendered_fields")):
            for (value,) in db.execute(f"SELECT {column} FROM {table}"):
                text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
                hits += [f"{table}: {s[:4]}..." for s in secrets if s in text]
    return hits


def test_example_dag_leaks_no_secret(
    example: Any,  # noqa: F811
    dm_emulator: Any,
    airflow_db: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    # Authenticate with the API token so the token in use is known and can be searched for.
    conn = json.loads(dm_emulator.connection_json())
    conn["extra"] = json.dumps({"api_token": dm_emulator.api_token})
    monkeypatch.setenv("AIRFLOW_CONN_DATAMASQUE_DEFAULT", json.dumps(conn))
    dag = example("datamasque_mask_before_refresh")
    dag.get_task("mask").options = {"run_secret": RUN_SECRET}
    dag_run = dag.test()
    states = {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in dag_run.get_task_instances()}
    assert set(states.values()) == {"success"}, states

    secrets = [RUN_SECRET, DB_PASSWORD, dm_emulator.api_token, dm_emulator.password]
    logs = capfd.readouterr()
    output = logs.out + logs.err
    assert "[DataMasque " in output, "the task log was captured"
    assert [s[:4] for s in secrets if s in output] == []
    assert _scan_db(airflow_db, secrets) == []
    # The run secret really was sent to DataMasque (so the test can fail).
    assert dm_emulator.get_run(1)["options"].get("has_run_secret") is True


def test_exception_texts_leak_no_secret(dm_emulator: Any) -> None:
    from airflow_provider_datamasque.hooks.datamasque import DataMasqueHook
    from airflow_provider_datamasque.hooks.errors import DataMasqueError

    hook = DataMasqueHook()
    with pytest.raises(DataMasqueError) as caught:
        hook.create_datamasque_connection(
            {
                "name": "x",
                "db_type": "postgres",
                "dbpassword": DB_PASSWORD,
                "connection_string": "AccountKey=" + RUN_SECRET,
            }
        )
    assert DB_PASSWORD not in str(caught.value) and RUN_SECRET not in str(caught.value)
    assert "port" in str(caught.value)  # the server's reason is still there

"""Fixtures and helpers for the resource-operator tests (rulesets, connections, seeds, reports).

Kept out of ``conftest.py`` so it cannot clash with other operator tests; test modules import
the fixtures they use by name.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_datamasque.emulator.samples import DISCOVERY_RULESET_YAML as SDD_YAML
from airflow_provider_datamasque.hooks.datamasque import DataMasqueHook

BASE = "https://dm.test"
TOKEN = "0123456789abcdef0123456789abcdef01234567"
LOGIN_URL = f"{BASE}/api/auth/token/login/"
CONN_ENV = "AIRFLOW_CONN_DATAMASQUE_DEFAULT"
RULESET_ID = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
CONNECTION_ID = "11111111-2222-3333-4444-555555555555"


# "mask_tabel" sits on line 7, column 11.
TYPO_YAML = """version: '1.0'
tasks:
  - type: mask_table
    table: customers
    key: id
    rules: []
  - type: mask_tabel
    table: orders
"""

PG_PASSWORD = "Pg-Secret-Passw0rd-42"
PG_CONFIG: dict[str, Any] = {
    "db_type": "postgres",
    "host": "staging-db.example.com",
    "port": 5432,
    "database": "app",
    "user": "masker",
    "password": PG_PASSWORD,
}
#: Writes that change DataMasque state (the emulator journal's view).
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


@pytest.fixture
def mock_api(requests_mock: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """requests-mock behind the default Airflow connection, with login answered and no retries."""
    monkeypatch.setenv(
        CONN_ENV,
        json.dumps(
            {
                "conn_type": "datamasque",
                "host": BASE,
                "login": "admin",
                "password": "pw-123456",
                "extra": {"max_retries": 0},
            }
        ),
    )
    requests_mock.post(LOGIN_URL, json={"key": TOKEN, "id": 1})
    yield requests_mock


@pytest.fixture
def emu(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A fresh DataMasque emulator per test, as the default Airflow connection."""
    emulator_module = pytest.importorskip("airflow_provider_datamasque.emulator")
    with emulator_module.DataMasqueEmulator(run_seconds=0.3) as emulator:
        monkeypatch.setenv(CONN_ENV, emulator.connection_json())
        yield emulator


def api_calls(mocker: Any, method: str | None = None) -> list[Any]:
    """requests-mock history without logins, optionally of one method."""
    return [
        r
        for r in mocker.request_history
        if r.path != "/api/auth/token/login/" and (method is None or r.method == method)
    ]


def writes(emu: Any) -> list[tuple[str, str]]:
    """Journal entries (method, path) that change state, logins excluded."""
    return [
        (e.method, e.path)
        for e in emu.journal
        if e.method in WRITE_METHODS and not e.path.startswith("/api/auth/")
    ]


def finished_run(
    emu: Any, yaml_text: str = SDD_YAML, name: str = "airflow-test-run", timeout: float = 20.0
) -> int:
    """Start a run on a fresh postgres connection and ruleset; wait until it is terminal."""
    fields = {k: v for k, v in PG_CONFIG.items() if k != "password"} | {"dbpassword": PG_PASSWORD}
    conn = emu.create_connection(name=f"pg-{name}", **fields)
    ruleset = emu.create_ruleset(f"rs-{name}", yaml_text)
    hook = DataMasqueHook()
    run = hook.start_run(connection=conn["id"], ruleset=ruleset["id"], name=name, options={})
    run_id = int(run["id"])
    deadline = time.monotonic() + timeout
    while hook.get_run(run_id)["status"] not in ("finished", "finished_with_warnings", "failed", "cancelled"):
        assert time.monotonic() < deadline, f"run {run_id} did not finish"
        time.sleep(0.05)
    hook.close()
    return run_id


def make_dag(dag_id: str, **kwargs: Any) -> Any:
    from airflow.providers.common.compat.sdk import DAG

    return DAG(dag_id, schedule=None, **kwargs)


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> Any:
    """Everything logged so far: stdlib logging (Airflow 2) and structlog's stdout (Airflow 3)."""
    caplog.set_level("DEBUG")

    def text() -> str:
        out, err = capfd.readouterr()
        # Put it back so pytest still shows it for a failing test.
        print(out, end="")
        return caplog.text + out + err

    return text

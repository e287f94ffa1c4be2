"""Fixtures for the emulator tests: a fresh emulator per test and a logged-in HTTP session."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from airflow_provider_datamasque.emulator import DataMasqueEmulator
from airflow_provider_datamasque.emulator.samples import DISCOVERY_RULESET_YAML as SDD_YAML
from airflow_provider_datamasque.emulator.samples import MASK_RULESET_YAML as MASK_YAML
from airflow_provider_datamasque.emulator.samples import POSTGRES_CONNECTION as PG


class Api:
    """A thin authenticated client over one requests.Session (one keep-alive connection)."""

    def __init__(self, emu: DataMasqueEmulator) -> None:
        self.emu = emu
        self.session = requests.Session()
        resp = self.session.post(
            f"{emu.url}/api/auth/token/login/", json={"username": emu.username, "password": emu.password}
        )
        assert resp.status_code == 200, resp.text
        self.session.headers["Authorization"] = f"Token {resp.json()['key']}"

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, f"{self.emu.url}{path}", timeout=30, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.call("POST", path, **kwargs)

    def start_run(self, connection: str, ruleset: str, **extra: Any) -> requests.Response:
        body = {"connection": connection, "ruleset": ruleset, "options": {}} | extra
        return self.post("/api/runs/", json=body)

    def wait_terminal(self, run_id: int, timeout: float = 15.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            run = self.get(f"/api/runs/{run_id}/").json()
            if run["status"] in ("finished", "finished_with_warnings", "failed", "cancelled"):
                return run
            assert time.monotonic() < deadline, f"run {run_id} stuck in {run['status']}"
            time.sleep(0.02)


@pytest.fixture
def emu() -> Iterator[DataMasqueEmulator]:
    with DataMasqueEmulator(run_seconds=0.5, seed=7) as emulator:
        yield emulator


@pytest.fixture
def api(emu: DataMasqueEmulator) -> Api:
    return Api(emu)


@pytest.fixture
def mask_yaml() -> str:
    return MASK_YAML


@pytest.fixture
def sdd_yaml() -> str:
    return SDD_YAML


@pytest.fixture
def seeded(emu: DataMasqueEmulator) -> Callable[..., tuple[str, str]]:
    """Create a postgres connection and a ruleset; returns (connection id, ruleset id)."""

    def make(yaml_text: str = MASK_YAML, conn_name: str = "pg", ruleset_name: str = "rs") -> tuple[str, str]:
        conn = emu.create_connection(**(PG | {"name": conn_name}))
        ruleset = emu.create_ruleset(ruleset_name, yaml_text)
        return conn["id"], ruleset["id"]

    return make

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_provider_datamasque.hooks import client as client_module
from airflow_provider_datamasque.hooks import runs as runs_module
from airflow_provider_datamasque.hooks.datamasque import DataMasqueHook

from ._support import CONN_ENV, LOGIN_URL, TOKEN, FakeTime, conn_json


@pytest.fixture(autouse=True)
def fake_time(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    """No test really sleeps; retry waits are recorded in ``fake_time.sleeps``."""
    fake = FakeTime()
    monkeypatch.setattr(client_module, "time", fake)
    monkeypatch.setattr(runs_module, "time", fake)
    return fake


@pytest.fixture
def make_hook(monkeypatch: pytest.MonkeyPatch) -> Callable[..., DataMasqueHook]:
    """Build a hook from an env-var Airflow connection; keyword arguments override its fields."""
    hooks: list[DataMasqueHook] = []

    def _make(**overrides: Any) -> DataMasqueHook:
        monkeypatch.setenv(CONN_ENV, conn_json(**overrides))
        hook = DataMasqueHook()
        hooks.append(hook)
        return hook

    yield _make  # type: ignore[misc]
    for hook in hooks:
        hook.close()


@pytest.fixture
def hook(make_hook: Callable[..., DataMasqueHook]) -> DataMasqueHook:
    return make_hook()


@pytest.fixture
def api(requests_mock: Any) -> Iterator[Any]:
    """requests-mock with a working login endpoint."""
    requests_mock.post(LOGIN_URL, json={"key": TOKEN, "id": 1})
    yield requests_mock

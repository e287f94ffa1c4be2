"""Constants and small helpers shared by the DataMasqueHook unit tests."""

from __future__ import annotations

import json
import time
from typing import Any

BASE = "https://dm.test"
USERNAME = "admin"
PASSWORD = "pw-123456"
TOKEN = "0123456789abcdef0123456789abcdef01234567"
LOGIN_URL = f"{BASE}/api/auth/token/login/"
CONN_ENV = "AIRFLOW_CONN_DATAMASQUE_DEFAULT"
CONN_UUID = "11111111-2222-3333-4444-555555555555"
RULESET_UUID = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
FILE_RULESET_UUID = "ffffffff-bbbb-cccc-dddd-eeeeeeeeeeee"

#: Fast retries by default: tests that care about waits read ``FakeTime.sleeps`` instead.
FAST_EXTRAS: dict[str, Any] = {"max_retries": 3, "retry_backoff": 0.001}


def conn_json(**overrides: Any) -> str:
    """An Airflow connection in JSON form; ``extra`` is merged, a ``None`` value drops a field."""
    conn: dict[str, Any] = {
        "conn_type": "datamasque",
        "host": BASE,
        "login": USERNAME,
        "password": PASSWORD,
        "extra": dict(FAST_EXTRAS),
    }
    extra = overrides.pop("extra", None)
    if extra is not None:
        conn["extra"].update(extra)
        conn["extra"] = {k: v for k, v in conn["extra"].items() if v is not None}
    conn.update(overrides)
    return json.dumps({k: v for k, v in conn.items() if v is not None})


class FakeTime:
    """Stands in for the ``time`` module of the hook code: records sleeps instead of sleeping."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def login_calls(mocker: Any) -> list[Any]:
    return [r for r in mocker.request_history if r.method == "POST" and r.path == "/api/auth/token/login/"]


def calls(mocker: Any, method: str, path: str) -> list[Any]:
    return [r for r in mocker.request_history if r.method == method and r.path == path]

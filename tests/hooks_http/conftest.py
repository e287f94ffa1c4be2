"""DataMasqueHook over real HTTP: a fresh emulator per test and a recording hook pointed at it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_provider_datamasque.emulator import DataMasqueEmulator, FaultConfig
from airflow_provider_datamasque.emulator.faults import FaultDecision, FaultInjector
from airflow_provider_datamasque.hooks.datamasque import DataMasqueHook

from . import _coverage

CONN_ENV = "AIRFLOW_CONN_DATAMASQUE_DEFAULT"
#: Quick retries: a test that needs a slow backoff (to tell it apart from Retry-After) says so.
FAST_RETRIES: dict[str, Any] = {
    "max_retries": 4,
    "retry_backoff": 0.01,
    "retry_max_wait": 0.05,
    "timeout": 10,
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "covers(*names): DataMasqueHook methods the test calls over HTTP")


_passed = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[_passed] = report.passed
    return report


@pytest.fixture(autouse=True)
def _check_declared_coverage(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a passing test, every method its ``covers`` mark names must have been called."""
    _coverage.called.clear()
    yield
    wanted = _coverage.declared(request.function)
    if not wanted or not request.node.stash.get(_passed, False):
        return
    unknown = wanted - _coverage.PUBLIC_METHODS
    assert not unknown, f"covers() names no such public DataMasqueHook method: {sorted(unknown)}"
    missing = wanted - _coverage.called
    assert not missing, f"test declares covers({sorted(missing)}) but never called them on the hook"


@pytest.fixture
def emu() -> Iterator[DataMasqueEmulator]:
    with DataMasqueEmulator(run_seconds=0.3, seed=11) as emulator:
        yield emulator


def connection_json(emu: DataMasqueEmulator, **extra: Any) -> str:
    """Login/password connection to ``emu`` with fast retries; ``extra`` overrides extras."""
    extras = {k: v for k, v in (FAST_RETRIES | extra).items() if v is not None}
    return json.dumps(
        {
            "conn_type": "datamasque",
            "host": emu.url,
            "login": emu.username,
            "password": emu.password,
            "extra": extras,
        }
    )


@pytest.fixture
def make_hook(
    emu: DataMasqueEmulator, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., DataMasqueHook]]:
    """A recording hook on ``emu``; ``conn`` replaces connection fields, keywords override extras."""
    hooks: list[DataMasqueHook] = []

    def make(conn: dict[str, Any] | None = None, **extra: Any) -> DataMasqueHook:
        fields = json.loads(connection_json(emu, **extra)) | (conn or {})
        monkeypatch.setenv(CONN_ENV, json.dumps({k: v for k, v in fields.items() if v is not None}))
        hook = _coverage.RecordingHook()
        hook.config  # noqa: B018 - read the connection now, while the env var says this
        hooks.append(hook)
        return hook

    yield make
    for hook in hooks:
        hook.close()


@pytest.fixture
def hook(make_hook: Callable[..., DataMasqueHook]) -> DataMasqueHook:
    return make_hook()


def seed_for(config: FaultConfig, method: str, path: str, outcomes: list[str | None]) -> FaultConfig:
    """``config`` with a seed under which consecutive matching requests meet exactly ``outcomes``
    (a fault kind such as "error"/"rate_limit"/"drop", or None for a clean answer).

    Draws with the emulator's own ``FaultInjector``, so the emulator will make the same choices.
    """
    for seed in range(10_000):
        candidate = FaultConfig(**(vars(config) | {"seed": seed}))
        injector = FaultInjector(candidate)
        drawn: list[FaultDecision | None] = [injector.decide(method, path) for _ in outcomes]
        if [d.kind if d else None for d in drawn] == outcomes:
            return candidate
    raise AssertionError(f"no seed gives {outcomes}")  # pragma: no cover

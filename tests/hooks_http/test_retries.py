"""Retries under injected 500/502/503/429 and dropped connections, seen in the emulator's journal."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_datamasque.emulator import DataMasqueEmulator, FaultConfig
from airflow_provider_datamasque.hooks.datamasque import DataMasqueHook
from airflow_provider_datamasque.hooks.errors import DataMasqueApiError, DataMasqueNotReadyError

from ._data import MASK_YAML, seeded
from .conftest import FAST_RETRIES, seed_for

#: (hook call, method, path, expected check) for GET endpoints of each kind.
GET_CALLS: dict[str, tuple[Callable[[DataMasqueHook], Any], str, Callable[[Any], bool]]] = {
    "get_current_user": (
        lambda h: h.get_current_user(),
        "/api/users/me/",
        lambda r: r["username"] == "admin",
    ),
    "list_rulesets": (
        lambda h: h.list_rulesets(),
        "/api/v2/rulesets/",
        lambda r: [x["name"] for x in r] == ["rs"],
    ),
    "get_run": (lambda h: h.get_run(1), "/api/runs/1/", lambda r: r["id"] == 1),
}


def statuses(emu: DataMasqueEmulator, method: str, path: str, since: int = 0) -> list[int | str]:
    """Answers to ``method path`` in the journal from entry ``since`` on ("dropped" for a drop)."""
    return [
        "dropped" if e.dropped else e.status
        for e in emu.journal[since:]
        if e.method == method and e.path == path
    ]


@pytest.fixture
def with_run(hook: DataMasqueHook, emu: DataMasqueEmulator) -> DataMasqueHook:
    seeded(emu)
    hook.start_run(connection="pg", ruleset="rs", name="r")
    return hook


@pytest.mark.parametrize("status", [500, 502, 503])
@pytest.mark.parametrize("call", sorted(GET_CALLS))
def test_get_succeeds_after_server_errors(
    with_run: DataMasqueHook, emu: DataMasqueEmulator, status, call
) -> None:
    invoke, path, check = GET_CALLS[call]
    emu.set_faults(
        seed_for(
            FaultConfig(error_rate=0.6, error_statuses=(status,), path_pattern=f"^GET {path}$"),
            "GET",
            path,
            ["error", "error", None],
        )
    )
    since = len(emu.journal)
    assert check(invoke(with_run))
    assert statuses(emu, "GET", path, since) == [status, status, 200]


@pytest.mark.covers("get_run")
def test_get_succeeds_after_dropped_connections(with_run: DataMasqueHook, emu: DataMasqueEmulator) -> None:
    path = "/api/runs/1/"
    config = FaultConfig(drop_rate=0.6, path_pattern=f"^GET {path}$")
    emu.set_faults(seed_for(config, "GET", path, ["drop", "drop", None]))
    since = len(emu.journal)
    assert with_run.get_run(1)["id"] == 1
    assert statuses(emu, "GET", path, since) == ["dropped", "dropped", 200]


@pytest.mark.covers("get_current_user")
def test_429_honours_retry_after(make_hook, emu: DataMasqueEmulator) -> None:
    # A slow backoff: without Retry-After the first wait would be at least 2.5 s.
    hook = make_hook(retry_backoff=5, retry_max_wait=10)
    path = "/api/users/me/"
    config = FaultConfig(rate_limit_rate=0.6, retry_after=0.2, path_pattern=f"^GET {path}$")
    emu.set_faults(seed_for(config, "GET", path, ["rate_limit", "rate_limit", None]))
    started = time.monotonic()
    assert hook.get_current_user()["username"] == emu.username
    elapsed = time.monotonic() - started
    entries = [e for e in emu.journal if e.path == path]
    assert [e.status for e in entries] == [429, 429, 200]
    gaps = [later.time - earlier.time for earlier, later in itertools.pairwise(entries)]
    assert all(gap >= 0.19 for gap in gaps), gaps  # waited as told
    assert elapsed < 2.0  # ... and not the backoff


@pytest.mark.covers("create_ruleset")
def test_429_on_a_post_is_retried_and_creates_once(hook: DataMasqueHook, emu: DataMasqueEmulator) -> None:
    path = "/api/rulesets/"
    config = FaultConfig(rate_limit_rate=0.6, retry_after=0.01, path_pattern=f"^POST {path}$")
    emu.set_faults(seed_for(config, "POST", path, ["rate_limit", None]))
    assert hook.create_ruleset("rs", MASK_YAML)["name"] == "rs"
    assert statuses(emu, "POST", path) == [429, 201]
    assert len(emu.store.rulesets) == 1


@pytest.mark.covers("create_ruleset")
@pytest.mark.parametrize("status", [500, 502, 503])
def test_post_not_retried_on_server_error(hook: DataMasqueHook, emu: DataMasqueEmulator, status) -> None:
    emu.set_faults(
        FaultConfig(error_rate=1.0, error_statuses=(status,), path_pattern="^POST /api/rulesets/$")
    )
    with pytest.raises(DataMasqueApiError) as info:
        hook.create_ruleset("rs", MASK_YAML)
    assert info.value.status == status
    assert statuses(emu, "POST", "/api/rulesets/") == [status]


@pytest.mark.covers("get_current_user")
def test_get_gives_up_after_max_retries(hook: DataMasqueHook, emu: DataMasqueEmulator) -> None:
    emu.set_faults(FaultConfig(error_rate=1.0, error_statuses=(502,), path_pattern="^GET /api/users/me/$"))
    with pytest.raises(DataMasqueNotReadyError, match="HTTP 502"):
        hook.get_current_user()
    assert statuses(emu, "GET", "/api/users/me/") == [502] * (1 + FAST_RETRIES["max_retries"])


@pytest.mark.covers("get_current_user")
def test_restart_window_is_ridden_out(make_hook, emu: DataMasqueEmulator) -> None:
    hook = make_hook(max_retries=20, retry_backoff=0.05, retry_max_wait=0.1)
    hook.get_current_user()
    emu.unavailable(0.4)  # a DataMasque restart: 502 from the gateway for everything
    assert hook.get_current_user()["username"] == emu.username
    seen = statuses(emu, "GET", "/api/users/me/")
    assert seen[0] == 200 and seen[-1] == 200 and seen.count(502) >= 2

"""Pagination of the runs list, and the 401 re-login when a login token expires mid-sequence."""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest

from airflow_provider_datamasque.emulator import DataMasqueEmulator, FaultConfig
from airflow_provider_datamasque.hooks.datamasque import DataMasqueHook
from airflow_provider_datamasque.hooks.errors import DataMasqueAuthError, DataMasqueNotFoundError

from ._data import seeded

LOGIN = r"/api/auth/token/login/"


def start_runs(hook: DataMasqueHook, emu: DataMasqueEmulator, count: int) -> list[int]:
    """``count`` finished runs on one connection (runs of zero length end at once)."""
    conn_id, ruleset_id = seeded(emu)
    emu.run_seconds = 0.0
    return [
        hook.start_run(connection=conn_id, ruleset=ruleset_id, name=f"run-{i}")["id"] for i in range(count)
    ]


def page_offsets(emu: DataMasqueEmulator) -> list[int]:
    return [
        int(parse_qs(e.query)["offset"][0])
        for e in emu.journal
        if e.method == "GET" and e.path == "/api/runs/" and e.status == 200
    ]


@pytest.mark.covers("list_runs", "start_run")
def test_list_runs_follows_every_page_once(hook: DataMasqueHook, emu: DataMasqueEmulator) -> None:
    ids = start_runs(hook, emu, 23)
    listed = [run["id"] for run in hook.list_runs(page_size=5)]
    assert sorted(listed) == sorted(ids)  # all of them, each once
    assert len(listed) == len(set(listed)) == 23
    assert listed == sorted(ids, reverse=True)  # the server's order, pages in sequence
    assert page_offsets(emu) == [0, 5, 10, 15, 20]  # five pages, each fetched once


@pytest.mark.covers("list_runs", "start_run")
def test_list_runs_max_pages(hook: DataMasqueHook, emu: DataMasqueEmulator) -> None:
    start_runs(hook, emu, 12)
    assert len(list(hook.list_runs(page_size=5, max_pages=2))) == 10
    assert page_offsets(emu) == [0, 5]


@pytest.mark.covers("list_runs", "start_run")
def test_token_expiry_in_the_middle_of_pagination(hook: DataMasqueHook, emu: DataMasqueEmulator) -> None:
    ids = start_runs(hook, emu, 17)
    logins_before = emu.count_requests("POST", LOGIN)
    assert logins_before == 1
    # A fresh login token dies after 3 uses: re-log in now, so the expiry falls mid-listing.
    emu.set_faults(FaultConfig(token_expiry_after=3))
    hook.login()
    listed = [run["id"] for run in hook.list_runs(page_size=4)]
    assert sorted(listed) == sorted(ids) and len(listed) == 17
    assert emu.count_requests("POST", LOGIN) == logins_before + 2  # our login, then one re-login
    rejected = [e for e in emu.journal if e.status == 401]
    assert len(rejected) == 1 and rejected[0].path == "/api/runs/"
    assert parse_qs(rejected[0].query)["offset"] == ["12"]  # the fourth page, replayed after login
    assert page_offsets(emu) == [0, 4, 8, 12, 16]


@pytest.mark.covers("get_current_user", "get_run")
def test_token_expiry_relogs_in_once_per_expiry(hook: DataMasqueHook, emu: DataMasqueEmulator) -> None:
    emu.set_faults(FaultConfig(token_expiry_after=3))
    seeded(emu)
    for _ in range(7):
        assert hook.get_current_user()["username"] == emu.username
    # Uses 1-3 on the first token, the 4th is rejected -> login, replay (1), 2, 3, and so on.
    assert emu.count_requests("POST", LOGIN) == 3
    assert emu.count_requests("GET", r"/api/users/me/") == 7 + 2
    assert [e.status for e in emu.journal if e.status == 401] == [401, 401]
    with pytest.raises(DataMasqueNotFoundError):
        hook.get_run(99)  # other errors are not mistaken for expiry
    assert emu.count_requests("POST", LOGIN) == 3


@pytest.mark.covers("get_current_user")
def test_rejected_again_after_relogin_is_an_auth_error(make_hook, emu: DataMasqueEmulator) -> None:
    hook = make_hook()
    emu.set_faults(FaultConfig(token_expiry_after=0))  # every login token is dead on arrival
    with pytest.raises(DataMasqueAuthError, match="HTTP 401"):
        hook.get_current_user()
    assert emu.count_requests("POST", LOGIN) == 2  # the first login and exactly one re-login
    assert emu.count_requests("GET", r"/api/users/me/") == 2

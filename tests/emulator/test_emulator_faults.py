"""Each fault type, determinism under a seed, and the journal / runs_created bookkeeping."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from airflow_provider_datamasque.emulator import DataMasqueEmulator, FaultConfig

Seeded = Callable[..., tuple[str, str]]


def _statuses(emu: DataMasqueEmulator, n: int, path: str = "/api/healthcheck/") -> list[int]:
    out = []
    session = requests.Session()
    for _ in range(n):
        try:
            out.append(session.get(emu.url + path, timeout=5).status_code)
        except requests.ConnectionError:
            out.append(0)
            session = requests.Session()
    return out


def test_error_rate_is_deterministic_and_journaled(emu: DataMasqueEmulator) -> None:
    config = FaultConfig(error_rate=0.5, error_statuses=(500, 502, 503), seed=42)
    emu.set_faults(config)
    first = _statuses(emu, 60)
    emu.set_faults(config)
    second = _statuses(emu, 60)
    assert first == second
    assert {500, 502, 503, 200} <= set(first)
    assert 15 < first.count(200) < 45
    faulted = [e for e in emu.journal if e.fault]
    assert len(faulted) == 2 * sum(1 for s in first if s != 200)
    assert {e.fault for e in faulted} == {"error_500", "error_502", "error_503"}


def test_error_bodies_json_for_500_503_and_html_for_502(emu: DataMasqueEmulator) -> None:
    for status in (500, 502, 503):
        emu.set_faults(FaultConfig(error_rate=1.0, error_statuses=(status,)))
        resp = requests.get(emu.url + "/api/healthcheck/", timeout=5)
        assert resp.status_code == status
        if status == 502:
            assert resp.headers["Content-Type"] == "text/html" and "Bad Gateway" in resp.text
        else:
            assert "detail" in resp.json()


def test_drop_rate_closes_socket_without_response(emu: DataMasqueEmulator) -> None:
    emu.set_faults(FaultConfig(drop_rate=1.0))
    with pytest.raises(requests.ConnectionError):
        requests.get(emu.url + "/api/healthcheck/", timeout=5)
    entry = emu.journal[-1]
    assert entry.dropped and entry.fault == "drop" and entry.path == "/api/healthcheck/"


def test_rate_limit_sends_retry_after(emu: DataMasqueEmulator) -> None:
    emu.set_faults(FaultConfig(rate_limit_rate=1.0, retry_after=2.5))
    resp = requests.get(emu.url + "/api/healthcheck/", timeout=5)
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "2.5"
    assert "throttled" in resp.json()["detail"]


def test_latency_and_path_pattern(emu: DataMasqueEmulator, api: Any) -> None:
    emu.set_faults(
        FaultConfig(latency=0.3, error_rate=1.0, error_statuses=(503,), path_pattern=r"^GET /api/runs/")
    )
    started = time.monotonic()
    assert api.get("/api/runs/").status_code == 503
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    assert api.get("/api/connections/").status_code == 200  # not matched: no latency, no error
    assert time.monotonic() - started < 0.25
    assert api.post("/api/runs/", json={}).status_code == 400  # POST not matched either


def test_login_is_matched_like_anything_else(emu: DataMasqueEmulator) -> None:
    emu.set_faults(FaultConfig(error_rate=1.0, error_statuses=(500,), path_pattern="auth/token/login"))
    resp = requests.post(
        emu.url + "/api/auth/token/login/", json={"username": "admin", "password": emu.password}
    )
    assert resp.status_code == 500


def test_token_expiry_after_n_requests(emu: DataMasqueEmulator) -> None:
    emu.set_faults(FaultConfig(token_expiry_after=2))
    session = requests.Session()
    key = session.post(
        emu.url + "/api/auth/token/login/", json={"username": "admin", "password": emu.password}
    ).json()["key"]
    headers = {"Authorization": f"Token {key}"}
    assert [session.get(emu.url + "/api/users/me/", headers=headers).status_code for _ in range(3)] == [
        200,
        200,
        401,
    ]
    expired = session.get(emu.url + "/api/users/me/", headers=headers)
    assert expired.json() == {"detail": "Invalid token."}
    fresh = session.post(
        emu.url + "/api/auth/token/login/", json={"username": "admin", "password": emu.password}
    ).json()["key"]
    assert fresh != key
    assert (
        session.get(emu.url + "/api/users/me/", headers={"Authorization": f"Token {fresh}"}).status_code
        == 200
    )
    api_token = {"Authorization": f"Token {emu.api_token}"}
    assert all(session.get(emu.url + "/api/users/me/", headers=api_token).ok for _ in range(5))


def test_drop_run_start_responses_creates_the_run(emu: DataMasqueEmulator, api: Any, seeded: Seeded) -> None:
    conn, ruleset = seeded()
    emu.set_faults(FaultConfig(drop_run_start_responses=1))
    with pytest.raises(requests.ConnectionError):
        api.start_run(conn, ruleset)
    assert emu.runs_created == 1
    entry = [e for e in emu.journal if e.method == "POST" and e.path == "/api/runs/"][-1]
    assert entry.dropped and entry.status == 201 and entry.fault == "drop_run_start"
    retry = api.start_run(conn, ruleset)  # the blind retry collides with the run it did create
    assert retry.status_code == 409 and "(run 1)" in retry.json()["detail"]
    assert emu.runs_created == 1
    assert [r["id"] for r in api.get("/api/runs/", params={"run_status": "queued"}).json()] == [1]


def test_unavailable_window_answers_502_html(emu: DataMasqueEmulator) -> None:
    emu.unavailable(0.3)
    resp = requests.get(emu.url + "/api/healthcheck/", timeout=5)
    assert resp.status_code == 502 and "<html>" in resp.text
    assert emu.journal[-1].fault == "unavailable"
    time.sleep(0.35)
    assert requests.get(emu.url + "/api/healthcheck/", timeout=5).status_code == 200


def test_clear_faults_and_reset(emu: DataMasqueEmulator, api: Any, seeded: Seeded) -> None:
    seeded()
    emu.set_faults(FaultConfig(error_rate=1.0))
    assert requests.get(emu.url + "/api/healthcheck/", timeout=5).status_code >= 500
    emu.clear_faults()
    assert requests.get(emu.url + "/api/healthcheck/", timeout=5).status_code == 200
    assert emu.count_requests("GET", r"/api/healthcheck/") == 2
    assert emu.count_requests(None, r"/api/.*") >= 2
    emu.set_faults(FaultConfig(error_rate=1.0))
    emu.reset()
    assert emu.journal == [] and emu.runs_created == 0
    assert api.get("/api/connections/").json() == []  # old token still valid after reset

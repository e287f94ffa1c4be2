"""The trigger's native-async transport against the emulator: retries, shared session and login.

``AsyncDataMasqueClient`` drives the same retry and re-login decisions as the sync hook; triggers on
one connection in one event loop share one client (session, pool and token) that closes when the
last of them leaves.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from airflow_provider_datamasque.emulator import DataMasqueEmulator
from airflow_provider_datamasque.emulator.faults import FaultConfig
from airflow_provider_datamasque.hooks import async_client
from airflow_provider_datamasque.hooks.async_client import (
    AsyncDataMasqueClient,
    acquire_client,
    release_client,
)
from airflow_provider_datamasque.hooks.client import ClientConfig, RetryPolicy
from airflow_provider_datamasque.hooks.errors import DataMasqueNotReadyError
from airflow_provider_datamasque.triggers.runs import DataMasqueRunTrigger

from ._harness import start_run

LOGIN = r"/api/auth/token/login/"
FAST = RetryPolicy(max_retries=8, backoff=0.01, max_backoff=0.05)


def config(emu: DataMasqueEmulator, retry: RetryPolicy = FAST) -> ClientConfig:
    return ClientConfig(base_url=emu.url, username=emu.username, password=emu.password, retry=retry)


def faults_seen(emu: DataMasqueEmulator, kind: str) -> int:
    return sum(1 for entry in emu.journal if entry.fault == kind)


def requests_to(emu: DataMasqueEmulator, run_id: int) -> int:
    return emu.count_requests("GET", rf"/api/runs/{run_id}/")


def test_retries_ride_out_injected_502_and_429(dm_conn: DataMasqueEmulator) -> None:
    emu = dm_conn
    run_id = start_run("retries")
    emu.set_faults(
        FaultConfig(
            error_rate=0.3,
            error_statuses=(502,),
            rate_limit_rate=0.3,
            retry_after=0.0,
            path_pattern=rf"GET /api/runs/{run_id}/",
            seed=3,
        )
    )

    async def main() -> list[dict[str, Any]]:
        client = acquire_client(config(emu))
        try:
            return [await client.get_run(run_id) for _ in range(12)]
        finally:
            await release_client(client)

    runs = asyncio.run(main())

    assert [run["id"] for run in runs] == [run_id] * 12
    assert faults_seen(emu, "error_502") > 0 and faults_seen(emu, "rate_limit") > 0
    injected = faults_seen(emu, "error_502") + faults_seen(emu, "rate_limit")
    assert requests_to(emu, run_id) == 12 + injected  # each injected failure was retried once


def test_retries_are_bounded_and_the_error_is_mapped(dm_conn: DataMasqueEmulator) -> None:
    emu = dm_conn
    run_id = start_run("always-502")
    emu.set_faults(
        FaultConfig(error_rate=1.0, error_statuses=(502,), path_pattern=rf"GET /api/runs/{run_id}/")
    )

    async def main() -> None:
        client = acquire_client(config(emu, RetryPolicy(max_retries=2, backoff=0.01, max_backoff=0.02)))
        try:
            await client.get_run(run_id)
        finally:
            await release_client(client)

    with pytest.raises(DataMasqueNotReadyError, match="502"):
        asyncio.run(main())
    assert requests_to(emu, run_id) == 3  # one try and two retries


def test_401_relogs_in_once_for_every_user_of_the_shared_client(dm_conn: DataMasqueEmulator) -> None:
    emu = dm_conn
    run_id = start_run("relogin")
    emu.set_faults(FaultConfig(token_expiry_after=2))  # a login token dies after two uses
    logins_before = emu.count_requests("POST", LOGIN)

    async def main() -> tuple[AsyncDataMasqueClient, AsyncDataMasqueClient]:
        first, second = acquire_client(config(emu)), acquire_client(config(emu))
        try:
            await first.login()
            # Two users, two requests each, at the same time: the token's third use is refused.
            for _ in range(2):
                await asyncio.gather(first.get_run(run_id), second.get_run(run_id))
            return first, second
        finally:
            await release_client(first)
            await release_client(second)

    first, second = asyncio.run(main())

    assert first is second
    # The first login, and one re-login shared by both users.
    assert emu.count_requests("POST", LOGIN) == logins_before + 2
    assert sum(1 for entry in emu.journal if entry.status == 401) == 2
    assert requests_to(emu, run_id) == 6  # 4 answered + 2 refused and replayed


def test_two_triggers_share_one_connection_read_session_and_login(
    dm_conn: DataMasqueEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = dm_conn
    run_id = start_run("shared [emulator:long]")
    handed_out: list[AsyncDataMasqueClient] = []

    def recording_acquire(*args: Any, **kwargs: Any) -> AsyncDataMasqueClient:
        client = acquire_client(*args, **kwargs)
        handed_out.append(client)
        return client

    monkeypatch.setattr(async_client, "acquire_client", recording_acquire)
    reads: list[str] = []
    read_config = DataMasqueRunTrigger._read_config

    def counting_read(self: DataMasqueRunTrigger) -> ClientConfig:
        reads.append(self.datamasque_conn_id)
        return read_config(self)

    monkeypatch.setattr(DataMasqueRunTrigger, "_read_config", counting_read)
    logins_before = emu.count_requests("POST", LOGIN)

    async def main() -> tuple[dict[str, Any], dict[str, Any], bool]:
        async def first_event(trigger: DataMasqueRunTrigger) -> dict[str, Any]:
            async for event in trigger.run():
                return dict(event.payload)
            raise AssertionError("no event")

        short = asyncio.create_task(
            first_event(DataMasqueRunTrigger(run_id, poll_interval=0.2, end_time=time.time() + 0.8))
        )
        long = asyncio.create_task(first_event(DataMasqueRunTrigger(run_id, poll_interval=0.2)))
        timed_out = await short
        # The first trigger has left; the second still polls through the shared, open session.
        open_after_first = not handed_out[0].closed
        await asyncio.sleep(0.5)
        await asyncio.to_thread(emu.set_run_status, run_id, "finished")
        finished = await asyncio.wait_for(long, 15)
        return timed_out, finished, open_after_first

    timed_out, finished, open_after_first = asyncio.run(main())

    assert timed_out["status"] == "timeout" and finished["status"] == "success"
    assert len(handed_out) == 2 and handed_out[0] is handed_out[1]
    assert open_after_first
    assert handed_out[0].closed and handed_out[0].users == 0
    assert emu.count_requests("POST", LOGIN) == logins_before + 1  # one login for both triggers
    assert reads == ["datamasque_default"]  # started together: one connection read for both
    assert not any(async_client._shared.values())  # the registry forgot the closed client


def test_a_changed_connection_gets_its_own_client(emu: DataMasqueEmulator) -> None:
    async def main() -> tuple[AsyncDataMasqueClient, AsyncDataMasqueClient]:
        first = acquire_client(config(emu))
        other = ClientConfig(base_url=emu.url, username=emu.username, password=emu.password + "-new")
        second = acquire_client(other)
        await release_client(first)
        await release_client(second)
        return first, second

    first, second = asyncio.run(main())
    assert first is not second


class _RecordingProxy:
    """A forward HTTP proxy that records each request line and passes the request on."""

    def __init__(self) -> None:
        import http.server
        import threading
        import urllib.request

        seen = self.seen = []  # type: list[str]

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_any(self) -> None:
                seen.append(f"{self.command} {self.path}")
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in ("host", "proxy-connection")
                }
                request = urllib.request.Request(self.path, data=body, headers=headers, method=self.command)
                opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
                try:
                    with opener.open(request) as answer:
                        status, answer_headers, payload = answer.status, answer.headers, answer.read()
                except urllib.error.HTTPError as error:
                    status, answer_headers, payload = error.code, error.headers, error.read()
                self.send_response(status)
                for key in ("Content-Type",):
                    if answer_headers.get(key):
                        self.send_header(key, answer_headers[key])
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_any

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("bypass", [False, True], ids=["via-proxy", "no-proxy-bypass"])
def test_http_proxy_from_the_environment_is_used_and_no_proxy_is_honoured(
    emu: DataMasqueEmulator, monkeypatch: pytest.MonkeyPatch, bypass: bool
) -> None:
    """HTTP_PROXY / NO_PROXY apply in the triggerer as in the worker (requests reads them too),
    looked up once per client rather than in a thread for every request."""
    proxy = _RecordingProxy()
    try:
        for name in ("HTTP_PROXY", "http_proxy"):
            monkeypatch.setenv(name, proxy.url)
        for name in ("NO_PROXY", "no_proxy"):
            if bypass:
                monkeypatch.setenv(name, "127.0.0.1,localhost")
            else:
                monkeypatch.delenv(name, raising=False)

        async def main() -> list[dict[str, Any]]:
            client = AsyncDataMasqueClient(config(emu))
            try:
                return [await client.request_json("GET", "/api/runs/?limit=1") for _ in range(3)]
            finally:
                await client.close()

        answers = asyncio.run(main())
    finally:
        proxy.close()
    assert all("results" in answer or isinstance(answer, list) for answer in answers)
    through_proxy = [line for line in proxy.seen if line.startswith("GET ")]
    if bypass:
        assert proxy.seen == []
    else:
        # Absolute-form request lines: the proxy was asked to fetch DataMasque's URLs.
        assert len(through_proxy) == 3
        assert all(line.startswith(f"GET {emu.url}/api/runs/") for line in through_proxy)
        assert any(line.startswith(f"POST {emu.url}/api/auth/token/login/") for line in proxy.seen)

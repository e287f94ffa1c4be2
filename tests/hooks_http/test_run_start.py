"""No retry on run start: whatever happens to ``POST /api/runs/``, at most one masking run exists.

The client never repeats the start by itself; ``start_run`` looks the run up by name after an
unclear answer and sends the start again only when the run is confirmed absent.
"""

from __future__ import annotations

import pytest

from airflow_provider_datamasque.emulator import DataMasqueEmulator, FaultConfig
from airflow_provider_datamasque.hooks.datamasque import DataMasqueHook
from airflow_provider_datamasque.hooks.errors import DataMasqueApiError, DataMasqueTransportError

from ._data import seeded
from .conftest import FAST_RETRIES, seed_for

RUNS = "/api/runs/"
START = f"^POST {RUNS}$"


def trail(emu: DataMasqueEmulator) -> list[str]:
    """Run starts (POST) and run-list lookups (GET), in order, as ``METHOD status``."""
    return [f"{e.method} {'dropped' if e.dropped else e.status}" for e in emu.journal if e.path == RUNS]


@pytest.fixture
def ids(emu: DataMasqueEmulator) -> tuple[str, str]:
    return seeded(emu)


@pytest.mark.parametrize("status", [500, 502, 503])
def test_client_sends_a_start_once_on_server_error(
    hook: DataMasqueHook, emu: DataMasqueEmulator, ids: tuple[str, str], status: int
) -> None:
    emu.set_faults(FaultConfig(error_rate=1.0, error_statuses=(status,), path_pattern=START))
    body = {"name": "once", "connection": ids[0], "ruleset": ids[1], "options": {}}
    with pytest.raises(DataMasqueApiError) as info:
        hook.client.request_json("POST", RUNS, json_body=body)
    assert info.value.status == status
    assert emu.count_requests("POST", RUNS) == 1


def test_client_sends_a_start_once_when_the_response_is_lost(
    hook: DataMasqueHook, emu: DataMasqueEmulator, ids: tuple[str, str]
) -> None:
    emu.set_faults(FaultConfig(drop_run_start_responses=1))
    body = {"name": "once", "connection": ids[0], "ruleset": ids[1], "options": {}}
    with pytest.raises(DataMasqueTransportError, match="Could not reach DataMasque"):
        hook.client.request_json("POST", RUNS, json_body=body)
    assert emu.count_requests("POST", RUNS) == 1
    assert emu.runs_created == 1


@pytest.mark.covers("start_run")
@pytest.mark.parametrize("status", [500, 502, 503])
def test_start_run_after_gateway_error_looks_up_then_starts_once(
    hook: DataMasqueHook, emu: DataMasqueEmulator, ids: tuple[str, str], status: int
) -> None:
    config = FaultConfig(error_rate=0.6, error_statuses=(status,), path_pattern=START)
    emu.set_faults(seed_for(config, "POST", RUNS, ["error", None]))
    run = hook.start_run(connection=ids[0], ruleset=ids[1], name="nightly")
    assert run["id"] == 1 and run["name"] == "nightly"
    assert emu.runs_created == 1
    # The error answer was not trusted: the name was looked up before the start was sent again.
    assert trail(emu) == [f"POST {status}", "GET 200", "POST 201"]


@pytest.mark.covers("start_run")
def test_start_run_lost_response_is_found_by_name(
    hook: DataMasqueHook, emu: DataMasqueEmulator, ids: tuple[str, str]
) -> None:
    emu.set_faults(FaultConfig(drop_run_start_responses=1))  # created, then the answer is lost
    run = hook.start_run(connection=ids[0], ruleset=ids[1], name="nightly")
    assert run["id"] == 1 and run["name"] == "nightly"
    assert emu.runs_created == 1
    assert trail(emu) == ["POST dropped", "GET 200"]


@pytest.mark.covers("start_run")
def test_start_run_dropped_before_processing_starts_once(
    hook: DataMasqueHook, emu: DataMasqueEmulator, ids: tuple[str, str]
) -> None:
    emu.set_faults(seed_for(FaultConfig(drop_rate=0.6, path_pattern=START), "POST", RUNS, ["drop", None]))
    run = hook.start_run(connection=ids[0], ruleset=ids[1], name="nightly")
    assert run["id"] == 1
    assert emu.runs_created == 1
    assert trail(emu) == ["POST dropped", "GET 200", "POST 201"]


@pytest.mark.covers("start_run")
def test_start_run_lost_response_and_failing_lookup_raises_without_resending(
    hook: DataMasqueHook, emu: DataMasqueEmulator, ids: tuple[str, str]
) -> None:
    emu.set_faults(
        FaultConfig(
            drop_run_start_responses=1,
            error_rate=1.0,
            error_statuses=(503,),
            path_pattern=f"^GET {RUNS}$",
        )
    )
    with pytest.raises(DataMasqueTransportError, match="may have started") as info:
        hook.start_run(connection=ids[0], ruleset=ids[1], name="nightly")
    assert "'nightly'" in str(info.value) and "HTTP 503" in str(info.value)
    assert isinstance(info.value.__cause__, DataMasqueApiError) and info.value.__cause__.status == 503
    assert emu.runs_created == 1  # the one the lost answer was about; never a second
    assert emu.count_requests("POST", RUNS) == 1
    assert emu.count_requests("GET", RUNS) == 1 + FAST_RETRIES["max_retries"]  # the lookup was retried


@pytest.mark.covers("start_run")
def test_start_run_gives_up_with_the_servers_error(
    hook: DataMasqueHook, emu: DataMasqueEmulator, ids: tuple[str, str]
) -> None:
    emu.set_faults(FaultConfig(error_rate=1.0, error_statuses=(503,), path_pattern=START))
    with pytest.raises(DataMasqueApiError, match="HTTP 503"):
        hook.start_run(connection=ids[0], ruleset=ids[1], name="nightly")
    assert emu.runs_created == 0
    retries = FAST_RETRIES["max_retries"]
    # Each new start followed a lookup that found nothing.
    assert trail(emu) == ["POST 503"] + ["GET 200", "POST 503"] * retries


@pytest.mark.covers("start_run")
def test_start_run_429_is_retried_without_lookup(
    hook: DataMasqueHook, emu: DataMasqueEmulator, ids: tuple[str, str]
) -> None:
    config = FaultConfig(rate_limit_rate=0.6, retry_after=0.01, path_pattern=START)
    emu.set_faults(seed_for(config, "POST", RUNS, ["rate_limit", None]))
    assert hook.start_run(connection=ids[0], ruleset=ids[1], name="nightly")["id"] == 1
    assert emu.runs_created == 1
    assert trail(emu) == ["POST 429", "POST 201"]  # a 429 means "not processed": no lookup needed

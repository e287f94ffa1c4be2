"""Runs in the emulator child process (see ``_common.RemoteEmulator``): no Airflow imported here."""

from __future__ import annotations

import time
import traceback
from multiprocessing.connection import Connection
from typing import Any

from airflow_provider_datamasque.emulator import DataMasqueEmulator
from airflow_provider_datamasque.emulator import runs as emu_runs
from airflow_provider_datamasque.emulator.samples import MASK_RULESET_YAML as MASK_YAML
from airflow_provider_datamasque.emulator.samples import POSTGRES_CONNECTION as PG_CONNECTION


def connections_accepted(emu: DataMasqueEmulator) -> int:
    return emu.connections_accepted


def count_requests(emu: DataMasqueEmulator, method: str | None, path_regex: str) -> int:
    return emu.count_requests(method, path_regex)


def create_runs(
    emu: DataMasqueEmulator, names: list[str], durations: list[float], prefix: str = "c"
) -> list[dict[str, Any]]:
    """One connection per run (a connection holds one active run), runs created right now, each
    with its own duration. Returns ``{"id", "end_wall"}`` per run (end_wall: epoch seconds)."""
    ruleset_id = _ruleset(emu)
    created = []
    for index, (name, seconds) in enumerate(zip(names, durations, strict=True)):
        conn = emu.create_connection(**(PG_CONNECTION | {"name": f"{prefix}{index}-{time.monotonic_ns()}"}))
        data = {"connection": conn["id"], "ruleset": ruleset_id, "options": {}, "name": name}
        run = emu_runs.create_run(emu.store, data, seconds)
        created.append({"id": run.id, "end_wall": run.created_wall + run.duration})
    return created


def run_view(emu: DataMasqueEmulator, run_id: int) -> dict[str, Any]:
    return emu.get_run(run_id)


def _ruleset(emu: DataMasqueEmulator) -> str:
    with emu.store.lock:
        for ruleset in emu.store.rulesets.values():
            if ruleset["name"] == "bench":
                return str(ruleset["id"])
    return str(emu.create_ruleset("bench", MASK_YAML)["id"])


def serve(pipe: Connection, run_seconds: float) -> None:
    with DataMasqueEmulator(run_seconds=run_seconds) as emu:
        pipe.send(
            {
                "url": emu.url,
                "api_token": emu.api_token,
                "connection_json": emu.connection_json(),
                "username": emu.username,
                "password": emu.password,
            }
        )
        handlers = {
            "connections_accepted": connections_accepted,
            "count_requests": count_requests,
            "create_runs": create_runs,
            "run_view": run_view,
        }
        while True:
            try:
                name, kwargs = pipe.recv()
            except EOFError:
                return
            if name == "stop":
                pipe.send((True, None))
                return
            try:
                pipe.send((True, handlers[name](emu, **kwargs)))
            except Exception:
                pipe.send((False, traceback.format_exc()))

"""The ``python -m airflow_provider_datamasque.emulator`` entry point as a real subprocess."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
READY = re.compile(r"^DataMasque emulator listening on (http://127\.0\.0\.1:(\d+))$")


def _spawn(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_datamasque.emulator", "--port", "0", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().rstrip("\n")
    match = READY.match(line)
    assert match, f"unexpected ready line {line!r}; stderr: {proc.stderr.read() if proc.stderr else ''}"
    return proc, match.group(1)


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_serves_and_exits_cleanly_on_sigterm(procs: list[subprocess.Popen[str]]) -> None:
    proc, url = _spawn(
        "--run-seconds", "0.2", "--username", "ops", env={"DATAMASQUE_EMULATOR_PASSWORD": "Env-Pw-1"}
    )
    procs.append(proc)
    assert requests.get(url + "/api/healthcheck/", timeout=5).status_code == 200
    login = requests.post(
        url + "/api/auth/token/login/", json={"username": "ops", "password": "Env-Pw-1"}, timeout=5
    )
    assert login.status_code == 200
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    assert proc.stdout is not None and proc.stdout.read() == ""  # exactly one line printed


def test_cli_sigint_and_fault_flags(procs: list[subprocess.Popen[str]]) -> None:
    proc, url = _spawn(
        "--password",
        "Flag-Pw-1",
        "--startup-502-seconds",
        "1.5",
        "--error-rate",
        "1",
        "--error-statuses",
        "503",
        "--fault-path",
        "^GET /api/runs/",
    )
    procs.append(proc)
    assert requests.get(url + "/api/healthcheck/", timeout=5).status_code == 502
    deadline = time.monotonic() + 10
    while requests.get(url + "/api/healthcheck/", timeout=5).status_code == 502:
        assert time.monotonic() < deadline, "the start-up 502 window never ended"
        time.sleep(0.1)
    token = requests.post(
        url + "/api/auth/token/login/", json={"username": "admin", "password": "Flag-Pw-1"}, timeout=5
    ).json()["key"]
    runs = requests.get(url + "/api/runs/", headers={"Authorization": f"Token {token}"}, timeout=5)
    assert runs.status_code == 503
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 0

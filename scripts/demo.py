"""`make demo`: the mask-before-refresh example DAG against a local DataMasque emulator.

Starts the emulator on loopback, points ``datamasque_default`` at it through the environment,
runs ``airflow dags test`` on a SQLite metadata DB in a project-local AIRFLOW_HOME, prints a
short summary, and stops the emulator whatever happens.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / ".demo"
DAG_ID = "datamasque_mask_before_refresh"


def main() -> int:
    started = time.monotonic()
    DEMO.mkdir(exist_ok=True)
    bin_dir = Path(sys.executable).parent
    env = os.environ.copy()
    env.update(
        AIRFLOW_HOME=str(DEMO / "airflow_home"),
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "example_dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__UNIT_TEST_MODE="False",
        DATAMASQUE_EXAMPLE_WORKDIR=str(DEMO / "work"),
        DATAMASQUE_EXAMPLE_REPORT_ROOT=(DEMO / "reports").as_uri(),
        # The staging database DataMasque is pointed at (a stand-in; the emulator never dials it).
        AIRFLOW_CONN_STAGING_DB="postgres://masker:staging-Pw-4d3mo@staging-db.example.internal:5432/customers",
    )
    emulator = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_datamasque.emulator", "--port", "0", "--run-seconds", "6"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert emulator.stdout is not None
        ready = emulator.stdout.readline().strip()
        url = ready.rsplit(" ", 1)[-1]
        if not url.startswith("http"):
            print(f"emulator did not start: {ready!r}", file=sys.stderr)
            return 1
        print(f"==> DataMasque emulator at {url}")
        env["AIRFLOW_CONN_DATAMASQUE_DEFAULT"] = json.dumps(
            {"conn_type": "datamasque", "host": url, "login": "admin", "password": "Emulator-Passw0rd-1"}
        )
        print("==> airflow db migrate (SQLite in .demo/airflow_home)")
        subprocess.run([str(bin_dir / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True)
        print(f"==> airflow dags test {DAG_ID}  (full log: .demo/dags_test.log)")
        log_path = DEMO / "dags_test.log"
        with log_path.open("w") as log_file:
            result = subprocess.run(
                [str(bin_dir / "airflow"), "dags", "test", DAG_ID],
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        output = log_path.read_text(errors="replace")
        runs = _get(url, "/api/runs/")
        run = runs[0] if runs else {}
        reports = sorted((DEMO / "reports").rglob("*.csv"))
        streamed = sum(1 for line in output.splitlines() if "[DataMasque " in line)
        print()
        print("DataMasque demo summary")
        print(f"  DAG run           : {'success' if result.returncode == 0 else 'FAILED'} ({DAG_ID})")
        print(f"  masking run       : id {run.get('id')} -> {run.get('status')}")
        print(f"  runs created      : {len(runs)}")
        print(f"  log lines streamed: {streamed}")
        print(f"  SDD report        : {reports[-1] if reports else 'none'}")
        print(f"  cleanup ran       : {(DEMO / 'work' / 'cleanup.done').exists()}")
        print(f"  took              : {time.monotonic() - started:.0f}s")
        if result.returncode != 0:
            print("\n".join(output.splitlines()[-40:]), file=sys.stderr)
        return result.returncode
    finally:
        emulator.terminate()
        try:
            emulator.wait(timeout=10)
        except subprocess.TimeoutExpired:
            emulator.kill()


def _get(url: str, path: str) -> list[dict]:
    """List runs straight from the emulator (logging in like any client)."""
    login = urllib.request.Request(
        url + "/api/auth/token/login/",
        data=json.dumps({"username": "admin", "password": "Emulator-Passw0rd-1"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(login) as response:
        token = json.load(response)["key"]
    request = urllib.request.Request(url + path, headers={"Authorization": f"Token {token}"})
    with urllib.request.urlopen(request) as response:
        body = json.load(response)
    return body if isinstance(body, list) else body.get("results", [])


if __name__ == "__main__":
    sys.exit(main())

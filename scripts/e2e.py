"""`make e2e`: a real Airflow (scheduler, triggerer, ...) running the deferrable nightly example.

Starts the DataMasque emulator on loopback, creates the ``warehouse_nightly_copy`` connection on it,
then runs a real Airflow in a fresh project-local AIRFLOW_HOME (``.e2e/airflow_home``, SQLite):
``api-server`` + ``scheduler`` + ``dag-processor`` + ``triggerer`` with LocalExecutor on Airflow 3,
``scheduler`` + ``triggerer`` with SequentialExecutor on Airflow 2 (the only one it allows on SQLite).
It triggers ``datamasque_nightly_masking``, waits for the run, and checks that it succeeded, that
``mask`` really deferred to a DataMasqueRunTrigger in the triggerer, that the DataMasque run log lines
reached the task log (the triggerer's part of it) and the resumed task logged the run summary, and
that the SDD report was written. The same checks on every line; the few version switches sit together
in ``main``. Every process is stopped on exit (whole
process groups); any failure exits non-zero and prints the tail of the relevant logs.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parent.parent
E2E = REPO / ".e2e"
HOME = E2E / "airflow_home"
LOGS = E2E / "logs"
REPORTS = E2E / "reports"
DB_PATH = HOME / "airflow.db"
DAG_ID = "datamasque_nightly_masking"
EMULATOR_USER = "admin"
EMULATOR_PASSWORD = "Emulator-Passw0rd-1"
DM_CONNECTION = {
    "name": "warehouse_nightly_copy",
    "mask_type": "database",
    "db_type": "postgres",
    "host": "db.example.internal",
    "port": 5432,
    "database": "warehouse",
    "user": "masker",
    "password": "e2e-db-pass-123",
}
REPORT_DS = "2025-06-01"
PARSE_TIMEOUT = 90.0
#: Generous: on Airflow 2 the SequentialExecutor runs the scheduled and the manual run one task at a time.
RUN_TIMEOUT = 300.0
TERMINAL_TI_FAILURES = {"failed", "upstream_failed", "up_for_retry"}


class E2EFailure(Exception):
    """A check failed; the message says which."""


class Stack:
    """Background processes, each in its own process group with its own log file."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen[str], Path | None, IO[str] | None]] = []

    def start(
        self, name: str, cmd: list[str], env: dict[str, str], *, pipe: bool = False
    ) -> subprocess.Popen[str]:
        log_path = None if pipe else LOGS / f"{name}.log"
        log_file = None if log_path is None else log_path.open("w")
        proc = subprocess.Popen(
            cmd,
            env=env,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if pipe else log_file,
            stderr=subprocess.STDOUT if log_file else None,
            text=True,
            start_new_session=True,
        )
        self.procs.append((name, proc, log_path, log_file))
        return proc

    def check_alive(self) -> None:
        for name, proc, log_path, _ in self.procs:
            if proc.poll() is not None:
                raise E2EFailure(f"{name} exited early with code {proc.returncode} (log: {log_path})")

    def stop(self) -> None:
        # Newest first, one at a time: the scheduler and triggerer go before the api-server they talk to.
        deadline = time.monotonic() + 20
        for _, proc, _, _ in reversed(self.procs):
            _signal_group(proc, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, min(8.0, deadline - time.monotonic())))
        for _, proc, _, log_file in self.procs:
            # The whole group: stragglers (task supervisors, gunicorn/uvicorn workers) go too.
            _signal_group(proc, signal.SIGKILL)
            if proc.poll() is None:
                proc.wait(timeout=5)
            if log_file:
                log_file.close()

    def log_paths(self) -> list[Path]:
        return [p for _, _, p, _ in self.procs if p is not None]


def _signal_group(proc: subprocess.Popen[str], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_json(url: str, *, data: dict | None = None, token: str | None = None, timeout: float = 10) -> object:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Token {token}"
    body = None if data is None else json.dumps(data).encode()
    request = urllib.request.Request(url, data=body, headers=headers, method="POST" if data else "GET")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.load(response)


def query(sql: str, params: tuple = ()) -> list[tuple]:
    """Read the metadata DB directly: far cheaper than a CLI call (each one imports all of Airflow)."""
    if not DB_PATH.exists():
        return []
    conn = sqlite3.connect(f"file:{DB_PATH}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError:
        return []  # table not there yet, or busy: poll again
    finally:
        conn.close()


def tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return f"(no {path})"
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


def main() -> int:
    started = time.monotonic()
    timings: dict[str, float] = {}
    airflow_version = dist_version("apache-airflow")
    airflow3 = int(airflow_version.split(".")[0]) >= 3
    airflow = str(Path(sys.executable).parent / "airflow")

    shutil.rmtree(E2E, ignore_errors=True)
    for d in (HOME, LOGS, REPORTS):
        d.mkdir(parents=True)

    env = os.environ.copy()
    for key in list(env):
        if key.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_")):
            del env[key]  # nothing from the caller's own Airflow set-up leaks in
    api_port = free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    # The version switches, all here. Airflow 2 refuses SQLite with any executor but SequentialExecutor,
    # has no api-server/dag-processor (its scheduler parses DAGs) and names the trigger date --exec-date.
    sqlite_executor = "LocalExecutor" if airflow3 else "SequentialExecutor"
    date_flag = "--logical-date" if airflow3 else "--exec-date"
    list_runs_dag = [DAG_ID] if airflow3 else ["-d", DAG_ID]
    env.update(
        AIRFLOW_HOME=str(HOME),
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "example_dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__UNIT_TEST_MODE="False",
        AIRFLOW__CORE__EXECUTOR=sqlite_executor,
        AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
        AIRFLOW__CORE__PARALLELISM="4",
        # Unpaused with catchup=False, the scheduler also starts the latest scheduled run; DataMasque
        # allows one active run per connection (HTTP 409), so the two DAG runs must not overlap.
        AIRFLOW__CORE__MAX_ACTIVE_RUNS_PER_DAG="1",
        AIRFLOW__CORE__FERNET_KEY="",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{DB_PATH}",
        AIRFLOW__DATABASE__CHECK_MIGRATIONS="False",
        # Fast loops: the example must be parsed, scheduled and picked up in seconds, not minutes.
        AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="5",
        AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL="5",
        AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES="1",
        AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL="5",
        AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL="5",
        AIRFLOW__SCHEDULER__PARSING_PROCESSES="1",
        AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC="1",
        AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC="1",
        AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME="0.5",
        AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC="1",
        # One shared secret set for every process (JWTs for the execution API, log serving).
        AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_urlsafe(32),
        AIRFLOW__API__SECRET_KEY=secrets.token_urlsafe(32),
        AIRFLOW__WEBSERVER__SECRET_KEY=secrets.token_urlsafe(32),
        AIRFLOW__API__BASE_URL=api_url,
        AIRFLOW__API__WORKERS="1",
        # Log servers on free ports, so a developer's own Airflow (8793/8794) does not clash.
        AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
        AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(free_port()),
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{api_url}/execution/",
        # Airflow 2's executors start each task as a bare `airflow tasks run ...`: it must be this one.
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        DATAMASQUE_EXAMPLE_WORKDIR=str(E2E / "work"),
        DATAMASQUE_EXAMPLE_REPORT_ROOT=REPORTS.as_uri(),
        PYTHONUNBUFFERED="1",
    )

    stack = Stack()
    failure: str | None = None
    run_id = f"e2e__{time.strftime('%Y%m%dT%H%M%S')}"
    # A fixed past day: the report lands at a path of its own, not the scheduled run's (same ds).
    logical_date = f"{REPORT_DS}T12:00:00+00:00"
    try:
        # 1. The emulator, and the DataMasque connection the DAG masks through.
        emulator = stack.start(
            "emulator",
            [
                sys.executable,
                "-m",
                "airflow_provider_datamasque.emulator",
                "--port",
                "0",
                "--run-seconds",
                "8",
            ],
            env,
            pipe=True,
        )
        assert emulator.stdout is not None
        ready = emulator.stdout.readline().strip()
        url = ready.rsplit(" ", 1)[-1]
        if not url.startswith("http"):
            raise E2EFailure(f"emulator did not start: {ready!r}")
        print(f"==> DataMasque emulator at {url}", flush=True)
        token = http_json(
            url + "/api/auth/token/login/", data={"username": EMULATOR_USER, "password": EMULATOR_PASSWORD}
        )["key"]  # type: ignore[index]
        http_json(url + "/api/connections/", data=DM_CONNECTION, token=token)
        print(f"==> created DataMasque connection {DM_CONNECTION['name']!r} on the emulator", flush=True)
        env["AIRFLOW_CONN_DATAMASQUE_DEFAULT"] = json.dumps(
            {"conn_type": "datamasque", "host": url, "login": EMULATOR_USER, "password": EMULATOR_PASSWORD}
        )

        # 2. Metadata DB.
        print(f"==> airflow {airflow_version}: db migrate (SQLite in .e2e/airflow_home)", flush=True)
        t0 = time.monotonic()
        migrate = subprocess.run(
            [airflow, "db", "migrate"],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        (LOGS / "db_migrate.log").write_text(migrate.stdout + migrate.stderr)
        if migrate.returncode != 0:
            raise E2EFailure(f"airflow db migrate failed ({migrate.returncode})")
        timings["db migrate"] = time.monotonic() - t0

        # 3. The components.
        t0 = time.monotonic()
        components = ["scheduler", "dag-processor", "triggerer"] if airflow3 else ["scheduler", "triggerer"]
        if airflow3:
            stack.start(
                "api-server", [airflow, "api-server", "--host", "127.0.0.1", "--port", str(api_port)], env
            )
        for component in components:
            stack.start(component, [airflow, component], env)
        print(f"==> started {', '.join((['api-server'] if airflow3 else []) + components)} (logs: .e2e/logs)")
        if airflow3:
            wait_for(
                lambda: _api_up(api_url),
                timeout=90,
                stack=stack,
                what=f"api-server on {api_url}",
            )
            print(f"==> api-server up on {api_url}", flush=True)

        # 4. Parsed?
        wait_for(
            lambda: bool(query("SELECT 1 FROM serialized_dag WHERE dag_id = ?", (DAG_ID,))),
            timeout=PARSE_TIMEOUT,
            stack=stack,
            what=f"{DAG_ID} to be parsed",
        )
        timings["start + parse"] = time.monotonic() - t0
        errors = query("SELECT filename, stacktrace FROM import_error")
        if any(DAG_ID in (filename or "") for filename, _ in errors):
            raise E2EFailure(f"import errors: {errors}")
        print(f"==> {DAG_ID} parsed", flush=True)

        # 5. Trigger and watch.
        t0 = time.monotonic()
        trig = subprocess.run(
            # An explicit logical date, as a scheduled run has: the DAG's report path uses {{ ds }},
            # which Airflow 3 leaves undefined for a manual run triggered without one.
            [airflow, "dags", "trigger", DAG_ID, "--run-id", run_id, date_flag, logical_date],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        (LOGS / "dags_trigger.log").write_text(trig.stdout + trig.stderr)
        if trig.returncode != 0:
            raise E2EFailure(f"airflow dags trigger failed ({trig.returncode}): {trig.stderr[-2000:]}")
        print(f"==> triggered {DAG_ID} run_id={run_id}", flush=True)

        seen_states: dict[str, list[str]] = {}
        seen_triggers: dict[str, set[str]] = {}
        state = watch_run(run_id, seen_states, seen_triggers, stack)
        timings["dag run"] = time.monotonic() - t0
        print(f"==> run finished: {state}; task states seen: {seen_states}", flush=True)
        if state != "success":
            raise E2EFailure(f"DAG run {run_id} ended {state!r}; task states seen: {seen_states}")

        # 6. Verify.
        # The task log of an attempt is attempt=N.log plus the triggerer's attempt=N.log.trigger.<job>.log
        # beside it: Airflow's FileTaskHandler (2.11 and 3.x alike) reads both as one log, and only the
        # triggerer writes the .trigger. file.
        mask_logs = sorted((HOME / "logs").glob(f"dag_id={DAG_ID}/run_id={run_id}/task_id=mask/**/*"))
        mask_logs = [p for p in mask_logs if p.is_file()]
        trigger_logs = [p for p in mask_logs if ".trigger." in p.name]
        worker_text = "\n".join(p.read_text(errors="replace") for p in mask_logs if p not in trigger_logs)
        trigger_text = "\n".join(p.read_text(errors="replace") for p in trigger_logs)
        checks: list[tuple[str, bool, str]] = []
        deferred_state = "deferred" in seen_states.get("mask", [])
        paused_deferred = "Pausing task as DEFERRED" in worker_text
        trigger_classes = sorted(seen_triggers.get("mask", set()))
        dm_trigger_lines = _dm_lines(trigger_text)
        trigger_ran = any(c.endswith(".DataMasqueRunTrigger") for c in trigger_classes) and bool(
            dm_trigger_lines
        )
        checks.append(
            (
                "mask deferred to the triggerer",
                (deferred_state or paused_deferred) and trigger_ran,
                f"TI state 'deferred' seen={deferred_state}, 'Pausing task as DEFERRED' logged={paused_deferred}, "
                f"trigger row(s) {trigger_classes or 'none seen'}, {len(dm_trigger_lines)} DataMasque line(s) "
                f"written by the triggerer ({len(trigger_logs)} trigger log file(s))",
            )
        )
        dm_lines = _dm_lines(worker_text + "\n" + trigger_text)
        # After resuming, the task logs the run's one-line summary with the log-line count the trigger relayed.
        resumed = [line for line in _events(worker_text) if RESUME_SUMMARY.match(line)]
        checks.append(
            (
                "DataMasque run log reached the task log",
                any("Masked table customers" in line for line in dm_lines)
                and any("Run finished with status finished" in line for line in dm_lines)
                and bool(resumed),
                f"{len(dm_lines)} '[DataMasque ...]' lines in {len(mask_logs)} log file(s) of {run_id}/mask; "
                f"post-resume summary logged={bool(resumed)}",
            )
        )
        report = REPORTS / REPORT_DS / "sdd_report.csv"
        report_size = report.stat().st_size if report.exists() else 0
        checks.append(
            (
                "SDD report written",
                report_size > 0,
                f"{report.relative_to(REPO)} ({report_size} bytes)" if report_size else f"no {report}",
            )
        )
        cli_state = _cli_run_state(airflow, env, run_id, list_runs_dag)
        checks.append(("airflow dags list-runs agrees", cli_state == "success", f"state={cli_state}"))

        print()
        print("DataMasque e2e summary")
        print(f"  airflow           : {airflow_version} ({sqlite_executor}, SQLite)")
        print(f"  DAG run           : {run_id} -> {state}")
        for name, ok, detail in checks:
            print(f"  [{'ok' if ok else 'FAIL'}] {name}: {detail}")
        if dm_lines:
            print("  sample log lines  :")
            for line in dm_lines[:1] + dm_lines[-2:]:
                print(f"      {line[:150]}")
        for name, seconds in timings.items():
            print(f"  {name:<18}: {seconds:.0f}s")
        print(f"  total             : {time.monotonic() - started:.0f}s")
        bad = [name for name, ok, _ in checks if not ok]
        if bad:
            if not dm_lines or not trigger_ran or not resumed:
                for p in mask_logs:
                    print(f"\n----- {p.relative_to(REPO)} (tail) -----\n{tail(p, 60)}", file=sys.stderr)
            raise E2EFailure("failed checks: " + "; ".join(bad))
    except (E2EFailure, subprocess.SubprocessError, OSError, KeyError) as exc:
        failure = f"{type(exc).__name__}: {exc}" if not isinstance(exc, E2EFailure) else str(exc)
    except KeyboardInterrupt:
        failure = "interrupted"
    finally:
        stack.stop()

    if failure is None:
        print("E2E PASSED")
        return 0
    print(f"\nE2E FAILED: {failure}", file=sys.stderr)
    for path in [*stack.log_paths(), LOGS / "db_migrate.log", LOGS / "dags_trigger.log"]:
        if path.exists():
            print(f"\n----- {path.relative_to(REPO)} (tail) -----\n{tail(path)}", file=sys.stderr)
    for p in sorted((HOME / "logs").glob(f"dag_id={DAG_ID}/run_id={run_id}/task_id=*/**/*")):
        if p.is_file():
            print(f"\n----- {p.relative_to(REPO)} (tail) -----\n{tail(p, 30)}", file=sys.stderr)
    print(f"\ntook {time.monotonic() - started:.0f}s", file=sys.stderr)
    return 1


def wait_for(predicate, *, timeout: float, stack: Stack, what: str, interval: float = 1.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stack.check_alive()
        if predicate():
            return
        time.sleep(interval)
    raise E2EFailure(f"timed out after {timeout:.0f}s waiting for {what}")


def _api_up(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(api_url + "/api/v2/monitor/health", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def watch_run(run_id: str, seen: dict[str, list[str]], triggers: dict[str, set[str]], stack: Stack) -> str:
    """Poll the DB every half second until every run of the DAG is done; return ``run_id``'s state.

    Records each task's state transitions in ``run_id`` (so a brief 'deferred' shows) and the class of
    each trigger its tasks deferred to (the trigger row is deleted once it fires). The scheduler also
    creates the latest scheduled run (catchup=False, not paused): it must not fail either.
    """
    deadline = time.monotonic() + RUN_TIMEOUT
    state = "missing"
    while time.monotonic() < deadline:
        stack.check_alive()
        for ti_run, task_id, ti_state in query(
            "SELECT run_id, task_id, state FROM task_instance WHERE dag_id = ?", (DAG_ID,)
        ):
            label = task_id if ti_run == run_id else f"{task_id} [{ti_run}]"
            history = seen.setdefault(label, [])
            if ti_state and (not history or history[-1] != ti_state):
                history.append(ti_state)
                print(f"    {label}: {ti_state}", flush=True)
            if ti_state in TERMINAL_TI_FAILURES:
                # Retries are minutes apart in this DAG: fail now rather than wait them out.
                return f"task {label} {ti_state}"
        for task_id, classpath in query(
            "SELECT ti.task_id, t.classpath FROM task_instance ti JOIN trigger t ON t.id = ti.trigger_id"
            " WHERE ti.dag_id = ? AND ti.run_id = ?",
            (DAG_ID, run_id),
        ):
            triggers.setdefault(task_id, set()).add(classpath)
        runs = dict(query("SELECT run_id, state FROM dag_run WHERE dag_id = ?", (DAG_ID,)))
        state = runs.get(run_id) or "missing"
        others_done = all(s in ("success", "failed") for r, s in runs.items() if r != run_id)
        if state == "failed" or (state == "success" and others_done):
            bad = [r for r, s in runs.items() if s != "success"]
            return state if not bad else f"{state} (but failed: {', '.join(bad)})"
        time.sleep(0.5)
    return f"timeout after {RUN_TIMEOUT:.0f}s (last state {state})"


RESUME_SUMMARY = re.compile(r"^DataMasque run \d+ \(.*\) finished\b.*; [1-9]\d* log lines \(")
# Airflow 2's plain-text log line: "[2026-01-01T02:00:00.000+0000] {monitor.py:86} INFO - message".
AIRFLOW2_LOG_LINE = re.compile(r"^\[[^\]]+\] \{[^}]*\} [A-Z]+ - (?P<message>.*)$")


def _event(line: str) -> str:
    """The message of a task log line (JSON in Airflow 3, plain text in Airflow 2)."""
    try:
        return str(json.loads(line).get("event", line))
    except (ValueError, AttributeError):
        match = AIRFLOW2_LOG_LINE.match(line.strip())
        return match["message"] if match else line.strip()


def _events(text: str) -> list[str]:
    return [_event(line) for line in text.splitlines()]


def _dm_lines(text: str) -> list[str]:
    """The DataMasque run-log lines the provider relays, "[DataMasque <timestamp>] LEVEL: message"."""
    return [event for event in _events(text) if event.startswith("[DataMasque ")]


def _cli_run_state(airflow: str, env: dict[str, str], run_id: str, dag_args: list[str]) -> str | None:
    out = subprocess.run(
        [airflow, "dags", "list-runs", *dag_args, "-o", "json"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    runs: list[dict] = []
    for line in reversed(out.stdout.splitlines()):  # warnings may be printed before the JSON
        if line.startswith("[{"):
            try:
                runs = json.loads(line)
            except ValueError:
                continue
            break
    for run in runs:
        if run.get("run_id") == run_id or run.get("dag_run_id") == run_id:
            return run.get("state")
    return None


if __name__ == "__main__":
    sys.exit(main())

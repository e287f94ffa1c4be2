"""Bad input across the hook and every operator: the right error type, in words a DAG author gets.

Each case runs against the real emulator. README's Troubleshooting section has one row per case
(what the user sees, the cause, the fix); the last test keeps the two in step.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_datamasque.hooks.datamasque import DataMasqueHook
from airflow_provider_datamasque.hooks.errors import (
    DataMasqueApiError,
    DataMasqueAuthError,
    DataMasqueConfigError,
    DataMasqueNotFoundError,
    DataMasqueNotReadyError,
    DataMasqueTransportError,
)
from airflow_provider_datamasque.operators.connections import DataMasqueCreateConnectionOperator
from airflow_provider_datamasque.operators.reports import DataMasqueSddReportOperator
from airflow_provider_datamasque.operators.rulesets import DataMasqueCreateRulesetOperator
from airflow_provider_datamasque.operators.runs import DataMasqueCancelRunOperator, DataMasqueRunOperator
from airflow_provider_datamasque.operators.seeds import DataMasqueUploadSeedOperator
from airflow_provider_datamasque.sensors.runs import DataMasqueRunSensor

SECRET = "short-secret"  # 12 characters: too short, and must never be echoed
MASK_YAML = "version: '1.0'\ntasks:\n  - type: mask_table\n    table: t\n    key: id\n    rules: []\n"
SDD_YAML = "version: '1.0'\ntasks:\n  - type: run_data_discovery\n"


@dataclass
class Env:
    emu: Any
    tmp: Path
    monkeypatch: pytest.MonkeyPatch

    def conn(self, **fields: Any) -> DataMasqueHook:
        """A hook on a connection built from the emulator's, with ``fields`` changed."""
        base = json.loads(self.emu.connection_json())
        extra = {**base.get("extra", {}), **fields.pop("extra", {}), "max_retries": 0}
        base.update(fields, extra=json.dumps(extra))
        self.monkeypatch.setenv("AIRFLOW_CONN_DATAMASQUE_BAD", json.dumps(base))
        return DataMasqueHook(datamasque_conn_id="datamasque_bad")

    def finished_run(self, yaml_text: str = MASK_YAML, name: str = "bad-input") -> int:
        hook = DataMasqueHook()
        run = hook.start_run(connection="pg", ruleset=self.ruleset(yaml_text), name=name, options={})
        self.emu.run_seconds = 0.2
        import time

        deadline = time.time() + 10
        while time.time() < deadline and hook.get_run_status(run["id"]) not in ("finished", "failed"):
            time.sleep(0.1)
        return int(run["id"])

    def ruleset(self, yaml_text: str) -> str:
        name = f"rs{abs(hash(yaml_text)) % 10**8}"
        try:
            return str(self.emu.create_ruleset(name, yaml_text)["id"])
        except Exception:
            return name


def run_op(**kwargs: Any) -> Callable[[Env], Any]:
    base = {"task_id": "mask", "source_connection": "pg", "ruleset": "rs"}
    return lambda env: DataMasqueRunOperator(**{**base, **kwargs}).execute({})


CASES: list[tuple[str, Callable[[Env], Any], type[BaseException], tuple[str, ...]]] = [
    (
        "malformed base URL",
        lambda e: e.conn(host="ht tp://dm example").client,
        DataMasqueConfigError,
        ("host",),
    ),
    ("empty host", lambda e: e.conn(host="").client, DataMasqueConfigError, ("host", "empty")),
    (
        "no credentials",
        lambda e: e.conn(login=None, password=None).client,
        DataMasqueConfigError,
        ("api_token",),
    ),
    (
        "timeout not a number",
        lambda e: e.conn(extra={"timeout": "soon"}).client,
        DataMasqueConfigError,
        ("timeout",),
    ),
    (
        "CA bundle missing",
        lambda e: e.conn(extra={"verify_ssl": "/no/ca.pem"}).client,
        DataMasqueConfigError,
        ("verify_ssl",),
    ),
    (
        "wrong password",
        lambda e: e.conn(password="wrong-password").get_current_user(),
        DataMasqueAuthError,
        ("Login", "Password"),
    ),
    (
        "wrong API token",
        lambda e: e.conn(login=None, password=None, extra={"api_token": "0" * 40}).list_users(),
        DataMasqueAuthError,
        ("token",),
    ),
    (
        "server unreachable",
        lambda e: e.conn(host="http://127.0.0.1:9").get_current_user(),
        DataMasqueTransportError,
        ("Could not reach",),
    ),
    (
        "HTML page from a proxy (502)",
        lambda e: (e.emu.unavailable(5), e.conn().get_run(1)),
        DataMasqueNotReadyError,
        ("HTML", "not ready"),
    ),
    ("unknown run id", lambda e: DataMasqueHook().get_run(4242), DataMasqueNotFoundError, ("404",)),
    (
        "unknown connection name",
        run_op(source_connection="pgg"),
        DataMasqueNotFoundError,
        ("No DataMasque connection named 'pgg'", "'pg'"),
    ),
    (
        "unknown ruleset name",
        run_op(ruleset="no-such-ruleset"),
        DataMasqueNotFoundError,
        ("ruleset", "no-such-ruleset"),
    ),
    (
        "ruleset name shared by database and file",
        lambda e: (
            e.emu.create_ruleset("dup", MASK_YAML),
            e.emu.create_ruleset("dup", "version: '1.0'\ntasks:\n  - type: mask_file\n", mask_type="file"),
            DataMasqueHook().resolve_ruleset_id("dup"),
        ),
        DataMasqueConfigError,
        ("ambiguous", "mask_type"),
    ),
    ("unknown run option", run_op(options={"batchsize": 10}), DataMasqueConfigError, ("batchsize",)),
    (
        "run_secret too short",
        run_op(options={"run_secret": SECRET}),
        DataMasqueConfigError,
        ("run_secret", "20"),
    ),
    ("batch_size zero", run_op(options={"batch_size": 0}), DataMasqueConfigError, ("batch_size", "positive")),
    ("dry_run not a boolean", run_op(options={"dry_run": "yes"}), DataMasqueConfigError, ("dry_run",)),
    ("options not a dict", run_op(options=["dry_run"]), DataMasqueConfigError, ("options",)),
    ("poll_interval zero", lambda e: run_op(poll_interval=0)(e), ValueError, ("poll_interval",)),
    ("negative timeout", lambda e: run_op(timeout=-5)(e), ValueError, ("timeout",)),
    (
        "cancel: run_id not a number",
        lambda e: DataMasqueCancelRunOperator(task_id="c", run_id="latest").execute({}),
        DataMasqueConfigError,
        ("run_id",),
    ),
    (
        "cancel: unknown run",
        lambda e: DataMasqueCancelRunOperator(task_id="c", run_id=999).execute({}),
        DataMasqueNotFoundError,
        ("999", "does not exist"),
    ),
    (
        "sensor: run_id not a number",
        lambda e: DataMasqueRunSensor(task_id="s", run_id="abc").poke({}),
        DataMasqueConfigError,
        ("run_id",),
    ),
    (
        "invalid YAML",
        lambda e: DataMasqueCreateRulesetOperator(
            task_id="r", name="bad", config_yaml="tasks:\n  - type: [oops\n"
        ).execute({}),
        DataMasqueConfigError,
        ("line",),
    ),
    (
        "ruleset invalid on the server",
        lambda e: DataMasqueCreateRulesetOperator(
            task_id="r", name="typo", config_yaml="version: '1.0'\ntasks:\n  - type: mask_tabel\n"
        ).execute({}),
        DataMasqueConfigError,
        ("mask_tabel", "line"),
    ),
    (
        "ruleset if_exists unknown",
        lambda e: DataMasqueCreateRulesetOperator(
            task_id="r", name="x", config_yaml=MASK_YAML, if_exists="replace"
        ),
        DataMasqueConfigError,
        ("if_exists",),
    ),
    (
        "connection fields missing",
        lambda e: DataMasqueCreateConnectionOperator(
            task_id="c", name="stg", connection_config={"db_type": "postgres", "host": "db"}
        ).execute({}),
        DataMasqueConfigError,
        ("port", "database", "user"),
    ),
    (
        "connection test fails",
        lambda e: DataMasqueCreateConnectionOperator(
            task_id="c",
            name="stg",
            connection_config={
                "db_type": "postgres",
                "host": "db.invalid",
                "port": 5432,
                "database": "d",
                "user": "u",
                "password": "Pw-123456",
            },
        ).execute({}),
        DataMasqueApiError,
        ("DNS",),
    ),
    (
        "seed file missing",
        lambda e: DataMasqueUploadSeedOperator(
            task_id="s", name="seed", source=str(e.tmp / "nope.csv")
        ).execute({}),
        DataMasqueConfigError,
        ("source",),
    ),
    (
        "report missing",
        lambda e: DataMasqueSddReportOperator(task_id="r", run_id=e.finished_run()).execute({}),
        DataMasqueNotFoundError,
        ("run_data_discovery",),
    ),
    (
        "report too big for XCom",
        lambda e: DataMasqueSddReportOperator(
            task_id="r", run_id=e.finished_run(SDD_YAML), max_xcom_bytes=10
        ).execute({}),
        DataMasqueConfigError,
        ("destination",),
    ),
    (
        "report destination not writable",
        lambda e: DataMasqueSddReportOperator(
            task_id="r", run_id=e.finished_run(SDD_YAML), destination="file:///proc/no-such-dir/sdd.csv"
        ).execute({}),
        DataMasqueConfigError,
        ("destination",),
    ),
]


@pytest.mark.parametrize(("case", "action", "error", "words"), CASES, ids=[c[0] for c in CASES])
def test_bad_input(
    case: str,
    action: Callable[[Env], Any],
    error: type[BaseException],
    words: tuple[str, ...],
    dm_emulator: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dm_emulator.create_connection(
        name="pg", db_type="postgres", host="db", port=5432, database="d", user="u", password="Pw-123456"
    )
    dm_emulator.create_ruleset("rs", MASK_YAML)
    with pytest.raises(error) as caught:
        action(Env(dm_emulator, tmp_path, monkeypatch))
    message = str(caught.value)
    for word in words:
        assert word.lower() in message.lower(), f"{case}: {word!r} not in {message!r}"
    assert SECRET not in message
    assert "Traceback" not in message and "JSONDecodeError" not in message


def test_there_are_at_least_25_cases() -> None:
    assert len(CASES) >= 25


def _readme_troubleshooting_cases() -> list[str]:
    """The first cell of each row of README's Troubleshooting table."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    assert "\n## Troubleshooting\n" in readme, "README has no Troubleshooting section"
    section = readme.split("\n## Troubleshooting\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    return [row.split("|")[1].strip() for row in rows[1:]]  # rows[0] is the header


def test_readme_troubleshooting_documents_every_case() -> None:
    """Adding a bad-input case without a README row (or leaving a stale row) fails here."""
    documented = _readme_troubleshooting_cases()
    cases = [case[0] for case in CASES]
    assert sorted(set(cases) - set(documented)) == [], "bad-input cases missing from README Troubleshooting"
    assert sorted(set(documented) - set(cases)) == [], "README Troubleshooting rows with no bad-input case"
    assert len(documented) == len(set(documented)), "a case is documented twice"

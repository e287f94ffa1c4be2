"""Fidelity: the official datamasque-python client runs its own workflow against the emulator."""

from __future__ import annotations

import time

import pytest
from datamasque.client import DataMasqueClient
from datamasque.client.exceptions import (
    DataMasqueApiError,
    DataMasqueNotReadyError,
    InvalidRulesetError,
    RunNotCancellableError,
)
from datamasque.client.models.connection import DatabaseConnectionConfig, DatabaseType, S3ConnectionConfig
from datamasque.client.models.dm_instance import DataMasqueInstanceConfig
from datamasque.client.models.ruleset import Ruleset, RulesetType
from datamasque.client.models.runs import MaskingRunOptions, MaskingRunRequest, MaskType
from datamasque.client.models.status import MaskingRunStatus, ValidationStatus

from airflow_provider_datamasque.emulator import DataMasqueEmulator, FaultConfig
from airflow_provider_datamasque.emulator.samples import DISCOVERY_RULESET_YAML as SDD_YAML


def _client(emu: DataMasqueEmulator) -> DataMasqueClient:
    return DataMasqueClient(
        DataMasqueInstanceConfig(base_url=emu.url + "/", username=emu.username, password=emu.password)
    )


def _wait(client: DataMasqueClient, run_id: int, timeout: float = 15.0) -> MaskingRunStatus:
    deadline = time.monotonic() + timeout
    while True:
        info = client.get_run_info(run_id)
        if info.status.is_in_final_state:
            return info.status
        assert time.monotonic() < deadline, f"run {run_id} still {info.status}"
        time.sleep(0.05)


def test_official_client_full_workflow(emu: DataMasqueEmulator) -> None:
    client = _client(emu)
    client.healthcheck()
    client.authenticate()
    assert client.token.startswith("Token ")
    assert client.list_connections() == []

    conn = client.create_or_update_connection(
        DatabaseConnectionConfig(
            name="warehouse",
            host="db.example.com",
            port=5432,
            database="app",
            user="masker",
            password="pw",
            database_type=DatabaseType.postgres,
        )
    )
    assert conn.id
    listed = client.list_connections()
    assert [c.name for c in listed] == ["warehouse"]
    assert isinstance(listed[0], DatabaseConnectionConfig)
    assert listed[0].password is None  # never returned
    # Second create_or_update goes through PUT and keeps the id.
    again = client.create_or_update_connection(
        DatabaseConnectionConfig(
            name="warehouse",
            host="db2.example.com",
            port=5432,
            database="app",
            user="masker",
            password="pw2",
            database_type=DatabaseType.postgres,
        )
    )
    assert again.id == conn.id
    s3 = client.create_or_update_connection(
        S3ConnectionConfig(name="files", bucket="b", base_directory="in", is_file_mask_source=True)
    )
    assert {type(c).__name__ for c in client.list_connections()} == {
        "DatabaseConnectionConfig",
        "S3ConnectionConfig",
    }

    ruleset = client.create_or_update_ruleset(Ruleset(name="masking", yaml=SDD_YAML))
    assert ruleset.id and ruleset.is_valid is ValidationStatus.valid
    updated = client.create_or_update_ruleset(Ruleset(name="masking", yaml=SDD_YAML + "# edited\n"))
    assert updated.id == ruleset.id
    names = [(r.name, r.ruleset_type) for r in client.list_rulesets()]
    assert names == [("masking", RulesetType.database)]

    request = MaskingRunRequest(
        connection=conn,
        ruleset=ruleset,
        options=MaskingRunOptions(batch_size=500, dry_run=True, run_secret="a" * 16),
        name="nightly",
    )
    run_id = client.start_masking_run(request)
    assert run_id == 1
    info = client.get_run_info(run_id)
    assert info.source_connection.name == "warehouse"
    assert info.destination_connection is None
    assert info.options and "run_secret" not in info.options and info.options["has_run_secret"] is True

    unfinished = client.get_unfinished_runs()
    assert unfinished["warehouse"].id == run_id

    assert _wait(client, run_id) is MaskingRunStatus.finished
    log = client.get_run_log(run_id)
    assert "Masked table customers" in log and "Run finished with status finished" in log
    report = client.get_sdd_report(run_id)
    assert report.startswith("table_schema,table_name,column_name")
    assert "customers,phone" in report
    assert "task_index" in client.get_run_report(run_id)

    # Start another run and cancel it; a second cancel is refused.
    second = client.start_masking_run(MaskingRunRequest(connection=conn.id, ruleset=ruleset.id))
    cancelled = client.cancel_run(second)
    assert cancelled.status is MaskingRunStatus.cancelling
    with pytest.raises(RunNotCancellableError):
        client.cancel_run(second)
    assert _wait(client, second) is MaskingRunStatus.cancelled

    # File masking run with a destination connection.
    dest = client.create_or_update_connection(
        S3ConnectionConfig(name="files-out", bucket="b", base_directory="out", is_file_mask_destination=True)
    )
    file_rs = client.create_or_update_ruleset(
        Ruleset(
            name="files", yaml="version: '1.0'\ntasks:\n  - type: mask_file\n", ruleset_type=RulesetType.file
        )
    )
    file_run = client.start_masking_run(
        MaskingRunRequest(
            connection=s3, destination_connection=dest, ruleset=file_rs, mask_type=MaskType.file
        )
    )
    file_info = client.get_run_info(file_run)
    assert (
        file_info.destination_connection is not None and file_info.destination_connection.name == "files-out"
    )

    client.delete_ruleset_by_name_if_exists("files", RulesetType.file)
    client.delete_connection_by_name_if_exists("nope")
    assert [u.username for u in client.list_users()] == [emu.username]


def test_official_client_errors(emu: DataMasqueEmulator) -> None:
    client = _client(emu)
    conn = emu.create_connection(
        name="pg", db_type="postgres", host="h", port=5432, database="d", user="u", dbpassword="p"
    )
    bad = client.create_or_update_ruleset(Ruleset(name="bad", yaml="tasks:\n  - type: nope\n"))
    assert bad.is_valid is ValidationStatus.invalid
    assert bad.validation_errors[0].line_number == 2
    with pytest.raises(InvalidRulesetError):
        client.start_masking_run(MaskingRunRequest(connection=conn["id"], ruleset=bad.id))
    with pytest.raises(DataMasqueApiError):
        client.get_run_info(999)


def test_official_client_reauthenticates_after_token_expiry(emu: DataMasqueEmulator) -> None:
    emu.set_faults(FaultConfig(token_expiry_after=3))
    client = _client(emu)
    for _ in range(10):
        assert client.list_connections() == []
    assert emu.count_requests("POST", "/api/auth/token/login/") >= 3
    assert emu.count_requests("GET", "/api/connections/") == 10 + sum(
        1 for e in emu.journal if e.path == "/api/connections/" and e.status == 401
    )


def test_official_client_sees_restart_window_as_not_ready(emu: DataMasqueEmulator) -> None:
    client = _client(emu)
    emu.unavailable(0.3)
    with pytest.raises(DataMasqueNotReadyError):
        client.healthcheck()
    time.sleep(0.35)
    client.healthcheck()

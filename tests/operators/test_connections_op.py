"""DataMasqueCreateConnectionOperator: unit tests (requests-mock) and emulator integration tests."""

from __future__ import annotations

from typing import Any

import airflow.providers.common.compat.sdk as compat_sdk
import pytest

from airflow_provider_datamasque.hooks.errors import (
    DataMasqueApiError,
    DataMasqueConfigError,
    DataMasqueError,
)
from airflow_provider_datamasque.operators.connections import (
    DataMasqueCreateConnectionOperator,
    build_payload,
    secret_values,
)

from .conftest_resources import (
    BASE,
    CONNECTION_ID,
    PG_CONFIG,
    PG_PASSWORD,
    api_calls,
    make_dag,
    writes,
)

COLLECTION = f"{BASE}/api/connections/"
OBJECT = f"{BASE}/api/connections/{CONNECTION_ID}/"
TEST = f"{OBJECT}test/"
AZURE_SECRET = "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=c2VjcmV0LWtleQ=="


def op(**kwargs: Any) -> DataMasqueCreateConnectionOperator:
    params: dict[str, Any] = {"task_id": "conn", "name": "staging", "connection_config": dict(PG_CONFIG)}
    params.update(kwargs)
    return DataMasqueCreateConnectionOperator(**params)


def saved(**fields: Any) -> dict[str, Any]:
    view = {"id": CONNECTION_ID, "name": "staging", "mask_type": "database", "db_type": "postgres"}
    return view | fields


@pytest.fixture
def masked(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Values handed to Airflow's mask_secret."""
    seen: list[Any] = []
    monkeypatch.setattr(compat_sdk, "mask_secret", lambda value, name=None: seen.append(value))
    return seen


# -- payloads ---------------------------------------------------------------------------------------


def test_database_payload_sends_dbpassword() -> None:
    payload = build_payload("staging", PG_CONFIG)
    assert payload == {
        "db_type": "postgres",
        "host": "staging-db.example.com",
        "port": 5432,
        "database": "app",
        "user": "masker",
        "dbpassword": PG_PASSWORD,
        "schema": "",
        "version": "1.0",
        "name": "staging",
        "mask_type": "database",
    }


def test_dbpassword_is_accepted_and_port_string_converted() -> None:
    config = {k: v for k, v in PG_CONFIG.items() if k != "password"} | {
        "dbpassword": "x-pass",
        "port": "5433",
    }
    payload = build_payload("staging", config)
    assert payload["dbpassword"] == "x-pass" and payload["port"] == 5433
    assert "password" not in payload


def test_missing_database_fields_are_all_named() -> None:
    with pytest.raises(DataMasqueConfigError) as excinfo:
        build_payload("staging", {"db_type": "oracle", "host": "db", "service_name": "ORCL"})
    message = str(excinfo.value)
    assert "oracle database connection 'staging'" in message
    assert "port, database, user, password (or dbpassword)" in message


def test_unknown_db_type() -> None:
    with pytest.raises(DataMasqueConfigError, match="'db_type' is 'sqlite', which is not supported"):
        build_payload("x", {"db_type": "sqlite"})
    with pytest.raises(DataMasqueConfigError, match="'db_type' is missing"):
        build_payload("x", {"host": "h"})


def test_bad_port() -> None:
    with pytest.raises(DataMasqueConfigError, match="port must be a number"):
        build_payload("x", PG_CONFIG | {"port": "abc"})


def test_file_connection_by_type_key() -> None:
    payload = build_payload("files", {"type": "s3_connection", "bucket": "b", "base_directory": "in/"})
    assert payload["mask_type"] == "file"
    assert payload["is_file_mask_source"] is False and payload["is_file_mask_destination"] is False
    assert payload["version"] == "1.0"


def test_missing_azure_fields_are_all_named() -> None:
    with pytest.raises(DataMasqueConfigError) as excinfo:
        build_payload("blobs", {"mask_type": "file", "type": "azure_blob_connection"})
    assert "azure_blob_connection connection 'blobs'" in str(excinfo.value)
    assert "container, connection_string" in str(excinfo.value)


def test_unknown_file_type() -> None:
    with pytest.raises(DataMasqueConfigError, match="'type' must be one of"):
        build_payload("f", {"mask_type": "file", "type": "ftp"})


def test_secret_values_finds_nested_and_structured_secrets() -> None:
    config = {
        "password": "p1-long",
        "connection_string": AZURE_SECRET,
        "service_account_key": {"private_key": "-----BEGIN KEY-----", "client_email": "a@b"},
        "engine_options": {"token": "tok-123"},
        "host": "h",
    }
    found = secret_values(config)
    assert "p1-long" in found and AZURE_SECRET in found and "tok-123" in found
    assert "-----BEGIN KEY-----" in found and "a@b" in found
    assert "h" not in found


def test_bad_if_exists() -> None:
    with pytest.raises(DataMasqueConfigError, match="if_exists"):
        op(if_exists="overwrite")


# -- behaviour against requests-mock ------------------------------------------------------------------


def test_create_and_test(mock_api: Any) -> None:
    mock_api.get(COLLECTION, json=[])
    mock_api.post(COLLECTION, status_code=201, json=saved())
    mock_api.post(TEST, json={})
    assert op().execute({}) == CONNECTION_ID
    post = api_calls(mock_api, "POST")[0]
    assert post.json()["dbpassword"] == PG_PASSWORD and "password" not in post.json()
    assert api_calls(mock_api, "POST")[1].url == TEST


def test_update_puts_the_full_payload(mock_api: Any) -> None:
    mock_api.get(COLLECTION, json=[saved()])
    mock_api.put(OBJECT, json=saved())
    mock_api.post(TEST, json={})
    assert op().execute({}) == CONNECTION_ID
    body = api_calls(mock_api, "PUT")[0].json()
    assert body == build_payload("staging", PG_CONFIG)


def test_skip_leaves_it(mock_api: Any) -> None:
    mock_api.get(COLLECTION, json=[saved()])
    assert op(if_exists="skip").execute({}) == CONNECTION_ID
    assert [r.method for r in api_calls(mock_api)] == ["GET"]


def test_fail_when_it_exists(mock_api: Any) -> None:
    mock_api.get(COLLECTION, json=[saved()])
    with pytest.raises(DataMasqueError, match="already exists"):
        op(if_exists="fail").execute({})
    assert [r.method for r in api_calls(mock_api)] == ["GET"]


def test_no_test_when_disabled(mock_api: Any) -> None:
    mock_api.get(COLLECTION, json=[])
    mock_api.post(COLLECTION, status_code=201, json=saved())
    assert op(test_after_save=False).execute({}) == CONNECTION_ID
    assert len(api_calls(mock_api, "POST")) == 1


def test_missing_fields_send_nothing(mock_api: Any) -> None:
    with pytest.raises(DataMasqueConfigError, match="missing required field"):
        op(connection_config={"db_type": "postgres", "host": "h"}).execute({})
    assert mock_api.request_history == []


def test_config_must_be_a_dict(mock_api: Any) -> None:
    with pytest.raises(DataMasqueConfigError, match="must be a dict"):
        op(connection_config="host=h").execute({})  # type: ignore[arg-type]
    assert mock_api.request_history == []


def test_failed_test_names_connection_and_reason(mock_api: Any) -> None:
    mock_api.get(COLLECTION, json=[])
    mock_api.post(COLLECTION, status_code=201, json=saved())
    mock_api.post(TEST, status_code=400, json={"detail": "DNS lookup for staging-db.example.com failed."})
    with pytest.raises(DataMasqueApiError) as excinfo:
        op().execute({})
    message = str(excinfo.value)
    assert "'staging'" in message and CONNECTION_ID in message
    assert "DNS lookup for staging-db.example.com failed." in message
    assert excinfo.value.status == 400


def test_test_warning_is_logged(mock_api: Any, logs: Any) -> None:
    mock_api.get(COLLECTION, json=[])
    mock_api.post(COLLECTION, status_code=201, json=saved())
    mock_api.post(TEST, json={"message": "Connected, but the user cannot see schema x"})
    op().execute({})
    assert "cannot see schema x" in logs()


def test_secrets_never_logged_returned_or_raised(mock_api: Any, logs: Any, masked: list[Any]) -> None:
    config = {
        "mask_type": "file",
        "type": "azure_blob_connection",
        "container": "masked",
        "connection_string": AZURE_SECRET,
        "base_directory": "",
    }
    mock_api.get(COLLECTION, json=[])
    # A careless server echoing the secret back in an error must not leak it either.
    mock_api.post(COLLECTION, status_code=400, json={"connection_string": [f"bad value {AZURE_SECRET}"]})
    with pytest.raises(DataMasqueApiError) as excinfo:
        op(name="blobs", connection_config=config).execute({})
    assert AZURE_SECRET not in str(excinfo.value)
    assert AZURE_SECRET in masked
    assert AZURE_SECRET not in logs()


def test_password_masked_and_not_in_logs_or_result(mock_api: Any, logs: Any, masked: list[Any]) -> None:
    mock_api.get(COLLECTION, json=[])
    mock_api.post(COLLECTION, status_code=201, json=saved())
    mock_api.post(TEST, json={})
    result = op().execute({})
    assert PG_PASSWORD in masked
    assert PG_PASSWORD not in str(result)
    text = logs()
    assert "Creating DataMasque connection 'staging'" in text
    assert PG_PASSWORD not in text


def test_rendered_secret_is_masked(masked: list[Any]) -> None:
    with make_dag("conn_template", params={"pw": "Rendered-Secret-99"}):
        task = op(
            name="staging-{{ params.env }}",
            connection_config=PG_CONFIG | {"password": "{{ params.pw }}"},
        )
    task.render_template_fields({"params": {"pw": "Rendered-Secret-99", "env": "uat"}})
    assert task.name == "staging-uat"
    assert task.connection_config["password"] == "Rendered-Secret-99"
    assert "Rendered-Secret-99" in masked


# -- against the emulator ---------------------------------------------------------------------------


@pytest.mark.integration
def test_emulator_create_test_and_update(emu: Any, logs: Any) -> None:
    from airflow_provider_datamasque.hooks.datamasque import DataMasqueHook

    connection_id = op().execute({})
    assert emu.count_requests("POST", r"/api/connections/") == 1
    assert emu.count_requests("POST", rf"/api/connections/{connection_id}/test/") == 1

    again = op(connection_config=PG_CONFIG | {"host": "staging-db-2.example.com"}).execute({})
    assert again == connection_id
    assert emu.count_requests("PUT", rf"/api/connections/{connection_id}/") == 1
    assert DataMasqueHook().get_datamasque_connection(connection_id)["host"] == "staging-db-2.example.com"
    assert PG_PASSWORD not in logs()


@pytest.mark.integration
def test_emulator_dns_failure(emu: Any, logs: Any) -> None:
    with pytest.raises(DataMasqueApiError) as excinfo:
        op(connection_config=PG_CONFIG | {"host": "restored-db.invalid"}).execute({})
    message = str(excinfo.value)
    assert "DNS lookup for restored-db.invalid failed" in message and "'staging'" in message
    assert PG_PASSWORD not in message and PG_PASSWORD not in logs()


@pytest.mark.integration
def test_emulator_skip_fail_and_missing_fields(emu: Any) -> None:
    existing = emu.create_connection(
        name="staging", **({k: v for k, v in PG_CONFIG.items() if k != "password"} | {"dbpassword": "x1234"})
    )
    assert op(if_exists="skip").execute({}) == existing["id"]
    with pytest.raises(DataMasqueError, match="already exists"):
        op(if_exists="fail").execute({})
    with pytest.raises(DataMasqueConfigError, match="bucket"):
        op(connection_config={"type": "gcs_connection", "base_directory": ""}).execute({})
    assert writes(emu) == []


@pytest.mark.integration
def test_emulator_file_connection(emu: Any) -> None:
    config = {
        "type": "s3_connection",
        "bucket": "masking-bucket",
        "base_directory": "input/",
        "is_file_mask_source": True,
    }
    connection_id = op(name="s3-in", connection_config=config).execute({})
    from airflow_provider_datamasque.hooks.datamasque import DataMasqueHook

    stored = DataMasqueHook().get_datamasque_connection(connection_id)
    assert stored["mask_type"] == "file" and stored["is_file_mask_source"] is True

"""Connections: validation like the server's serializer, secret-free views, and connection tests."""

from __future__ import annotations

import time
import uuid
from typing import Any

from airflow_provider_datamasque.emulator.state import ApiError, Store, iso, not_found

DB_TYPES = (
    "postgres",
    "mysql",
    "oracle",
    "mariadb",
    "mssql",
    "redshift",
    "dynamo_db",
    "db2_luw",
    "db2i",
    "mssql_linked",
    "snowflake",
    "mongodb",
    "documentdb",
    "cosmosdb",
    "databricks_lakebase",
    "databricks",
    "informix",
    "saphana",
    "cassandra",
    "sap_ase",
    "salesforce",
)
# Engines whose connection is a classic host/port/database/user/password tuple. The others
# (DynamoDB, Snowflake, Databricks, Salesforce, Mongo-likes) carry their own credentials.
CLASSIC_DB_TYPES = frozenset(DB_TYPES) - {
    "dynamo_db",
    "snowflake",
    "databricks",
    "salesforce",
    "mongodb",
    "documentdb",
    "cosmosdb",
    "cassandra",
}
FILE_TYPES = ("s3_connection", "azure_blob_connection", "gcs_connection", "mounted_share_connection")
SECRET_FIELDS = frozenset(
    {
        "password",
        "dbpassword",
        "connection_string",
        "service_account_key",
        "access_token",
        "snowflake_private_key_passphrase",
        "salesforce_private_key_passphrase",
    }
)
REQUIRED = "This field is required."
BLANK = "This field may not be blank."


def _is_file(data: dict[str, Any]) -> bool:
    return data.get("mask_type") == "file" or (data.get("mask_type") is None and "type" in data)


def validate_connection(data: Any) -> dict[str, Any]:
    """Return a normalised record or raise a 400 field map (all problems at once, like DRF)."""
    if not isinstance(data, dict):
        raise ApiError(400, {"non_field_errors": ["Invalid data. Expected a dictionary."]})
    record = {k: v for k, v in data.items() if k not in ("id", "created", "modified")}
    errors: dict[str, list[str]] = {}

    def need(name: str, allow_blank: bool = False) -> None:
        value = record.get(name)
        if value is None:
            errors[name] = [REQUIRED]
        elif not allow_blank and isinstance(value, str) and not value.strip():
            errors[name] = [BLANK]

    need("name")
    if _is_file(record):
        record["mask_type"] = "file"
        ctype = record.get("type")
        if ctype not in FILE_TYPES:
            errors["type"] = [REQUIRED if ctype is None else f'"{ctype}" is not a valid choice.']
        need("base_directory", allow_blank=True)
        if ctype in ("s3_connection", "gcs_connection"):
            need("bucket")
        elif ctype == "azure_blob_connection":
            need("container")
            need("connection_string")
        record.setdefault("is_file_mask_source", False)
        record.setdefault("is_file_mask_destination", False)
    else:
        if record.get("mask_type", "database") != "database":
            errors["mask_type"] = [f'"{record.get("mask_type")}" is not a valid choice.']
        record["mask_type"] = "database"
        db_type = record.get("db_type")
        if db_type not in DB_TYPES:
            errors["db_type"] = [REQUIRED if db_type is None else f'"{db_type}" is not a valid choice.']
        if db_type in CLASSIC_DB_TYPES:
            for name in ("host", "port", "database", "user"):
                need(name)
            if record.get("dbpassword") is None and record.get("password") is None:
                errors["dbpassword"] = [REQUIRED]
            port = record.get("port")
            if port is not None and "port" not in errors:
                try:
                    record["port"] = int(port)
                    if not 0 < record["port"] < 65536:
                        raise ValueError
                except (TypeError, ValueError):
                    errors["port"] = ["A valid integer is required."]
        if record.get("password") is not None and record.get("dbpassword") is None:
            record["dbpassword"] = record.pop("password")
        record.setdefault("schema", "")
        record.setdefault("is_read_only", False)
    if errors:
        raise ApiError(400, errors)
    record.setdefault("version", "1.0")
    return record


def public_view(record: dict[str, Any]) -> dict[str, Any]:
    """What the API returns: everything except passwords and other secrets."""
    return {k: v for k, v in record.items() if k not in SECRET_FIELDS}


def _check_unique(store: Store, name: str, exclude: str | None) -> None:
    for other in store.connections.values():
        if other["name"] == name and other["id"] != exclude:
            raise ApiError(400, {"name": ["connection with this name already exists."]})


def create_connection(store: Store, data: Any) -> dict[str, Any]:
    """POST /api/connections/."""
    record = validate_connection(data)
    with store.lock:
        _check_unique(store, record["name"], None)
        now = iso(time.time())
        record.update(
            id=str(uuid.uuid4()),
            created=now,
            modified=now,
            last_discovery_run_date=None,
            last_discovery_run_id=None,
        )
        store.connections[record["id"]] = record
    return public_view(record)


def get_connection(store: Store, conn_id: str) -> dict[str, Any]:
    """Internal record (with secrets) or 404."""
    record = store.connections.get(conn_id)
    if record is None:
        raise not_found()
    return record


def update_connection(store: Store, conn_id: str, data: Any, partial: bool) -> dict[str, Any]:
    """PUT replaces, PATCH merges; secrets omitted from the body keep their stored values."""
    if not isinstance(data, dict):
        raise ApiError(400, {"non_field_errors": ["Invalid data. Expected a dictionary."]})
    with store.lock:
        old = get_connection(store, conn_id)
        secrets_kept = {k: v for k, v in old.items() if k in SECRET_FIELDS}
        base = dict(old) if partial else {}
        base.update(data)
        if "password" in data:
            base.pop("dbpassword", None)
        for key, value in secrets_kept.items():
            if key == "dbpassword" and "password" in data:
                continue
            base.setdefault(key, value)
        record = validate_connection(base)
        _check_unique(store, record["name"], conn_id)
        record.update(
            id=conn_id,
            created=old["created"],
            modified=iso(time.time()),
            last_discovery_run_date=old.get("last_discovery_run_date"),
            last_discovery_run_id=old.get("last_discovery_run_id"),
        )
        store.connections[conn_id] = record
    return public_view(record)


def delete_connection(store: Store, conn_id: str) -> None:
    """DELETE /api/connections/{id}/."""
    with store.lock:
        get_connection(store, conn_id)
        del store.connections[conn_id]


def check_connection(record: dict[str, Any]) -> dict[str, Any]:
    """Pretend to connect: hosts ending in ``.invalid`` or containing "unreachable" fail DNS."""
    host = str(record.get("host") or record.get("bucket") or record.get("container") or "")
    if host.endswith(".invalid") or "unreachable" in host:
        raise ApiError(400, {"detail": f"DNS lookup for {host} failed."})
    return {}

"""Point DataMasque at a database or file store, e.g. the staging copy a DAG just restored."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_datamasque.hooks.errors import (
    DataMasqueApiError,
    DataMasqueConfigError,
    DataMasqueError,
)

if TYPE_CHECKING:
    import jinja2
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_datamasque.hooks.datamasque import DataMasqueHook

IF_EXISTS = ("update", "skip", "fail")
FILE_TYPES = ("s3_connection", "azure_blob_connection", "gcs_connection", "mounted_share_connection")
# Engines reached with a classic host/port/database/user/password; the others carry their own
# credentials (DynamoDB, Snowflake key pairs, Databricks, Salesforce, Mongo-likes, Cassandra).
CLASSIC_DB_TYPES = (
    "postgres",
    "mysql",
    "oracle",
    "mariadb",
    "mssql",
    "redshift",
    "db2_luw",
    "db2i",
    "mssql_linked",
    "databricks_lakebase",
    "informix",
    "saphana",
    "sap_ase",
)
OTHER_DB_TYPES = (
    "dynamo_db",
    "snowflake",
    "mongodb",
    "documentdb",
    "cosmosdb",
    "databricks",
    "cassandra",
    "salesforce",
)
REQUIRED_DB_FIELDS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(CLASSIC_DB_TYPES, ("host", "port", "database", "user", "dbpassword")),
    **dict.fromkeys(OTHER_DB_TYPES, ()),
    "snowflake": ("database",),
}
REQUIRED_FILE_FIELDS: dict[str, tuple[str, ...]] = {
    "s3_connection": ("bucket",),
    "gcs_connection": ("bucket",),
    "azure_blob_connection": ("container", "connection_string"),
    "mounted_share_connection": (),
}
#: Always secret, whatever the generic key test says.
SECRET_KEYS = frozenset(
    {"password", "dbpassword", "connection_string", "service_account_key", "snowflake_private_key_passphrase"}
)


def _is_secret_key(key: object) -> bool:
    from airflow_provider_datamasque.hooks.redact import is_sensitive_key

    return str(key).lower() in SECRET_KEYS or is_sensitive_key(key)


def secret_values(value: Any) -> list[str]:
    """Every string stored under a secret key (nested too); JSON-ish values count whole."""
    import json

    found: list[str] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            if _is_secret_key(key) and item not in (None, ""):
                if isinstance(item, str):
                    found.append(item)
                else:
                    found.append(json.dumps(item, default=str))
                    found.extend(_strings(item))
            else:
                found.extend(secret_values(item))
    elif isinstance(value, list | tuple):
        for item in value:
            found.extend(secret_values(item))
    return found


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list | tuple):
        return [s for item in value for s in _strings(item)]
    return []


def _missing(payload: Mapping[str, Any], names: Sequence[str]) -> list[str]:
    return [
        n
        for n in names
        if payload.get(n) is None or (isinstance(payload.get(n), str) and not payload[n].strip())
    ]


def build_payload(name: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """The API payload for ``config``, checked locally; every missing field is named at once."""
    payload = {k: v for k, v in config.items() if k not in ("id", "created", "modified")}
    password = payload.pop("password", None)
    if payload.get("dbpassword") in (None, "") and password not in (None, ""):
        payload["dbpassword"] = password
    mask_type = payload.get("mask_type")
    if mask_type is None:
        mask_type = "file" if "type" in payload else "database"
    if mask_type not in ("database", "file"):
        raise DataMasqueConfigError(
            f"DataMasque connection {name!r}: mask_type must be 'database' or 'file', got {mask_type!r}."
        )
    payload.update(version=str(payload.get("version") or "1.0"), name=name, mask_type=mask_type)
    if mask_type == "file":
        ctype = payload.get("type")
        if ctype not in REQUIRED_FILE_FIELDS:
            raise DataMasqueConfigError(
                f"DataMasque file connection {name!r}: 'type' must be one of {', '.join(FILE_TYPES)}; "
                f"got {ctype!r}."
            )
        payload.setdefault("base_directory", "")
        payload.setdefault("is_file_mask_source", False)
        payload.setdefault("is_file_mask_destination", False)
        missing = _missing(payload, REQUIRED_FILE_FIELDS[ctype])
        kind = ctype
    else:
        db_type = payload.get("db_type")
        if db_type not in REQUIRED_DB_FIELDS:
            known = ", ".join(sorted(REQUIRED_DB_FIELDS))
            raise DataMasqueConfigError(
                f"DataMasque database connection {name!r}: 'db_type' is "
                f"{'missing' if db_type is None else f'{db_type!r}, which is not supported'}; "
                f"use one of {known}."
            )
        missing = _missing(payload, REQUIRED_DB_FIELDS[db_type])
        missing = ["password (or dbpassword)" if m == "dbpassword" else m for m in missing]
        kind = f"{db_type} database"
        if db_type in CLASSIC_DB_TYPES:
            payload.setdefault("schema", "")
            port = payload.get("port")
            if port is not None and "port" not in missing:
                try:
                    payload["port"] = int(port)
                    if not 0 < payload["port"] < 65536:
                        raise ValueError
                except (TypeError, ValueError):
                    raise DataMasqueConfigError(
                        f"DataMasque connection {name!r}: port must be a number from 1 to 65535, got {port!r}."
                    ) from None
    if missing:
        raise DataMasqueConfigError(
            f"DataMasque {kind} connection {name!r} is missing required field(s): {', '.join(missing)}."
        )
    return payload


class DataMasqueCreateConnectionOperator(BaseOperator):
    """Create or update a DataMasque connection, then (optionally) let DataMasque test it.

    A mask-before-refresh DAG restores a staging database and uses this to point DataMasque at
    it; testing right after saving turns a wrong host or password into a clear task failure here
    rather than a failed masking run later. Secrets (password, ``dbpassword``,
    ``connection_string``, ``service_account_key``, ...) are masked in task logs and rendered
    fields and never logged, returned or put in error messages. Pass them with Jinja, e.g.
    ``"{{ conn.staging_db.password }}"``, so the DAG file holds no secret.

    :param name: DataMasque connection name (templated); an existing connection of that name is
        updated, skipped or refused per ``if_exists``.
    :param connection_config: Connection fields (templated). Database: ``db_type``, ``host``,
        ``port``, ``database``, ``user``, ``password`` (or ``dbpassword``), optional ``schema``,
        ``service_name``, ``connection_fileset``, ... File store: ``type`` (``s3_connection``,
        ``azure_blob_connection``, ``gcs_connection``, ``mounted_share_connection``),
        ``base_directory``, ``bucket`` (S3, GCS) or ``container`` + ``connection_string`` (Azure),
        ``is_file_mask_source``, ``is_file_mask_destination``. A ``mask_type`` key, or the presence
        of ``type``, says which.
    :param if_exists: ``"update"`` (replace the connection with this config), ``"skip"`` (leave
        it, no test) or ``"fail"``.
    :param test_after_save: Ask DataMasque to connect after saving and fail with its reason.
    :param datamasque_conn_id: Airflow connection id of type ``datamasque``.
    :return: The DataMasque connection id (UUID string), pushed to XCom.
    """

    template_fields: Sequence[str] = ("name", "connection_config")
    template_fields_renderers = {"connection_config": "json"}
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        name: str,
        connection_config: dict[str, Any],
        if_exists: str = "update",
        test_after_save: bool = True,
        datamasque_conn_id: str = "datamasque_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if if_exists not in IF_EXISTS:
            raise DataMasqueConfigError(
                f"{type(self).__name__}: if_exists must be one of {', '.join(IF_EXISTS)}; got {if_exists!r}."
            )
        self.name = name
        self.connection_config = connection_config
        self.if_exists = if_exists
        self.test_after_save = test_after_save
        self.datamasque_conn_id = datamasque_conn_id

    @cached_property
    def hook(self) -> DataMasqueHook:
        from airflow_provider_datamasque.hooks.datamasque import DataMasqueHook

        return DataMasqueHook(datamasque_conn_id=self.datamasque_conn_id)

    def _mask_secrets(self) -> None:
        from airflow.providers.common.compat.sdk import mask_secret

        for value in secret_values(self.connection_config):
            mask_secret(value)

    def render_template_fields(self, context: Context, jinja_env: jinja2.Environment | None = None) -> None:
        super().render_template_fields(context, jinja_env)
        # Rendered fields are stored and shown in the UI: mask what the templates produced.
        self._mask_secrets()

    def execute(self, context: Context) -> str:
        self._mask_secrets()
        if not isinstance(self.name, str) or not self.name.strip():
            raise DataMasqueConfigError(f"{type(self).__name__}: name must be a non-empty string.")
        if not isinstance(self.connection_config, Mapping):
            raise DataMasqueConfigError(
                f"DataMasque connection {self.name!r}: connection_config must be a dict of fields, "
                f"got {type(self.connection_config).__name__}."
            )
        payload = build_payload(self.name, self.connection_config)
        self.hook.client.scrubber.add(*secret_values(payload))
        return self._save_and_test(payload)

    def _save_and_test(self, payload: dict[str, Any]) -> str:
        from airflow_provider_datamasque.hooks.client import dumps_for_log

        hook = self.hook
        existing = hook.find_datamasque_connection(self.name)
        if existing is None:
            self.log.info("Creating DataMasque connection %r: %s", self.name, dumps_for_log(payload))
            saved = hook.create_datamasque_connection(payload)
        else:
            connection_id = str(existing["id"])
            if self.if_exists == "fail":
                raise DataMasqueError(
                    f"A DataMasque connection named {self.name!r} already exists (id {connection_id}) "
                    "and if_exists='fail'."
                )
            if self.if_exists == "skip":
                self.log.info(
                    "DataMasque connection %r already exists (id %s); if_exists='skip', leaving it as it is",
                    self.name,
                    connection_id,
                )
                return connection_id
            self.log.info(
                "Updating DataMasque connection %r (id %s): %s",
                self.name,
                connection_id,
                dumps_for_log(payload),
            )
            saved = hook.update_datamasque_connection(connection_id, payload) or {"id": connection_id}
        connection_id = str(saved.get("id") or (existing or {}).get("id"))
        self.log.info("DataMasque connection %r saved (id %s)", self.name, connection_id)
        if self.test_after_save:
            self._test(connection_id)
        return connection_id

    def _test(self, connection_id: str) -> None:
        try:
            answer = self.hook.test_datamasque_connection(connection_id)
        except DataMasqueApiError as exc:
            reason = exc.detail or str(exc)
            raise DataMasqueApiError(
                f"DataMasque saved connection {self.name!r} (id {connection_id}) but could not connect "
                f"with it: {reason}",
                status=exc.status,
                method=exc.method,
                path=exc.path,
                detail=exc.detail,
                body=exc.body,
            ) from None
        message = answer.get("message") if isinstance(answer, Mapping) else None
        if message:
            self.log.warning("DataMasque connection %r test passed with a warning: %s", self.name, message)
        else:
            self.log.info("DataMasque connected to %r successfully", self.name)

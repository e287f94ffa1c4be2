"""DataMasque connections (databases and file stores) and connection filesets."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, BinaryIO

from airflow_provider_datamasque.hooks.resource import ResourceMixin, object_path

CONNECTIONS_PATH = "/api/connections/"
FILESETS_PATH = "/api/connection-filesets/"


class ConnectionsMixin(ResourceMixin):
    """``/api/connections/`` and ``/api/connection-filesets/``.

    Method names say ``datamasque_connection`` because ``get_connection`` belongs to Airflow.
    """

    def list_datamasque_connections(self) -> list[dict[str, Any]]:
        return list(self.client.paginate(CONNECTIONS_PATH))

    def get_datamasque_connection(self, connection_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.client.request_json("GET", object_path("connections", connection_id))
        return result

    def create_datamasque_connection(self, config: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.client.request_json("POST", CONNECTIONS_PATH, json_body=dict(config))
        return result

    def update_datamasque_connection(
        self, connection_id: str, config: Mapping[str, Any], *, partial: bool = False
    ) -> dict[str, Any]:
        """PUT replaces the connection; ``partial=True`` PATCHes only the given fields."""
        method = "PATCH" if partial else "PUT"
        result: dict[str, Any] = self.client.request_json(
            method, object_path("connections", connection_id), json_body=dict(config), idempotent=True
        )
        return result

    def delete_datamasque_connection(self, connection_id: str, *, missing_ok: bool = True) -> None:
        self._delete_object(object_path("connections", connection_id), missing_ok)

    def test_datamasque_connection(
        self, connection_id: str | None = None, config: Mapping[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """Ask DataMasque to connect: a saved connection by id, or an unsaved ``config``.

        Returns the server's answer (it may carry a warning ``message``); a failure raises with
        the server's reason.
        """
        if connection_id:
            path = object_path("connections", connection_id) + "test/"
            body: dict[str, Any] = {}
        elif config is not None:
            path, body = CONNECTIONS_PATH + "test/", dict(config)
        else:
            raise ValueError("test_datamasque_connection needs connection_id or config")
        result: dict[str, Any] | None = self.client.request_json(
            "POST", path, json_body=body, idempotent=True
        )
        return result

    def find_datamasque_connection(self, name: str) -> dict[str, Any] | None:
        for item in self.list_datamasque_connections():
            if item.get("name") == name:
                return item
        return None

    def resolve_connection_id(self, name_or_id: str) -> str:
        """UUID of a DataMasque connection given by name or UUID."""
        return self._resolve_id("connection", name_or_id, self.list_datamasque_connections)

    # -- connection filesets ------------------------------------------------------------------------

    def list_connection_filesets(self) -> list[dict[str, Any]]:
        return list(self.client.paginate(FILESETS_PATH))

    def create_connection_fileset(
        self, name: str, database_type: str, zip_archive: BinaryIO | bytes, *, filename: str = "fileset.zip"
    ) -> dict[str, Any]:
        result: dict[str, Any] = self.client.request_json(
            "POST",
            FILESETS_PATH,
            data={"name": name, "database_type": database_type},
            files={"zip_archive": (filename, zip_archive, "application/zip")},
        )
        return result

    def update_connection_fileset(
        self,
        fileset_id: str,
        name: str,
        database_type: str,
        zip_archive: BinaryIO | bytes,
        *,
        filename: str = "fileset.zip",
    ) -> dict[str, Any]:
        result: dict[str, Any] = self.client.request_json(
            "PUT",
            object_path("connection-filesets", fileset_id),
            data={"name": name, "database_type": database_type},
            files={"zip_archive": (filename, zip_archive, "application/zip")},
        )
        return result

    def delete_connection_fileset(self, fileset_id: str, *, missing_ok: bool = True) -> None:
        self._delete_object(object_path("connection-filesets", fileset_id), missing_ok)

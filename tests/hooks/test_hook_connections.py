"""DataMasque connections and connection filesets."""

from __future__ import annotations

import io

import pytest

from airflow_provider_datamasque.hooks.errors import (
    DataMasqueApiError,
    DataMasqueConfigError,
    DataMasqueNotFoundError,
)

from ._support import BASE, CONN_UUID, calls

CONNS = f"{BASE}/api/connections/"
FILESETS = f"{BASE}/api/connection-filesets/"
ONE = f"{CONNS}{CONN_UUID}/"

CONFIG = {
    "name": "prod-db",
    "db_type": "postgres",
    "host": "db.internal",
    "port": 5432,
    "database": "app",
    "user": "masker",
    "dbpassword": "db-password-123",
}


def test_list_connections_paginated(hook, api):
    api.get(CONNS, json={"next": f"{CONNS}?page=2", "results": [{"id": 1}]}, complete_qs=True)
    api.get(f"{CONNS}?page=2", json={"next": None, "results": [{"id": 2}]}, complete_qs=True)
    assert hook.list_datamasque_connections() == [{"id": 1}, {"id": 2}]


def test_get_connection(hook, api):
    api.get(ONE, json={"id": CONN_UUID, "name": "prod-db"})
    assert hook.get_datamasque_connection(CONN_UUID) == {"id": CONN_UUID, "name": "prod-db"}


def test_create_connection(hook, api):
    api.post(CONNS, status_code=201, json={"id": CONN_UUID, "name": "prod-db"})
    assert hook.create_datamasque_connection(CONFIG)["id"] == CONN_UUID
    assert api.last_request.json() == CONFIG


@pytest.mark.parametrize(("partial", "method"), [(False, "PUT"), (True, "PATCH")])
def test_update_connection(hook, api, partial, method):
    api.register_uri(method, ONE, json={"id": CONN_UUID, "port": 5433})
    result = hook.update_datamasque_connection(CONN_UUID, {"port": 5433}, partial=partial)
    assert result == {"id": CONN_UUID, "port": 5433}
    (request,) = calls(api, method, f"/api/connections/{CONN_UUID}/")
    assert request.json() == {"port": 5433}


def test_update_connection_is_retried(hook, api):
    api.patch(ONE, [{"status_code": 502, "text": ""}, {"json": {"id": CONN_UUID}}])
    hook.update_datamasque_connection(CONN_UUID, {"port": 1}, partial=True)
    assert len(calls(api, "PATCH", f"/api/connections/{CONN_UUID}/")) == 2


def test_delete_connection(hook, api):
    api.delete(ONE, status_code=204)
    hook.delete_datamasque_connection(CONN_UUID)
    assert api.last_request.method == "DELETE"
    api.delete(ONE, status_code=404, json={"detail": "Not found."})
    hook.delete_datamasque_connection(CONN_UUID)
    with pytest.raises(DataMasqueNotFoundError):
        hook.delete_datamasque_connection(CONN_UUID, missing_ok=False)


def test_test_saved_connection(hook, api):
    api.post(f"{ONE}test/", json={"message": "Connection successful"})
    assert hook.test_datamasque_connection(CONN_UUID) == {"message": "Connection successful"}
    assert api.last_request.json() == {}


def test_test_unsaved_connection(hook, api):
    api.post(f"{CONNS}test/", json={"message": "ok"})
    assert hook.test_datamasque_connection(config=CONFIG) == {"message": "ok"}
    assert api.last_request.path == "/api/connections/test/"
    assert api.last_request.json() == CONFIG


def test_test_connection_failure_carries_server_reason(hook, api):
    api.post(f"{ONE}test/", status_code=400, json={"error": "could not connect to server: timeout"})
    with pytest.raises(DataMasqueApiError, match="could not connect to server: timeout"):
        hook.test_datamasque_connection(CONN_UUID)


def test_test_connection_needs_an_argument(hook, requests_mock):
    with pytest.raises(ValueError):
        hook.test_datamasque_connection()
    assert requests_mock.request_history == []


def test_find_connection(hook, api):
    api.get(CONNS, json=[{"id": CONN_UUID, "name": "prod-db"}])
    assert hook.find_datamasque_connection("prod-db") == {"id": CONN_UUID, "name": "prod-db"}
    assert hook.find_datamasque_connection("nope") is None


def test_resolve_connection_uuid_passthrough(hook, requests_mock):
    assert hook.resolve_connection_id(CONN_UUID) == CONN_UUID
    assert hook.resolve_connection_id(CONN_UUID.replace("-", "")) == CONN_UUID.replace("-", "")
    assert requests_mock.request_history == []


def test_resolve_connection_by_name(hook, api):
    api.get(CONNS, json=[{"id": CONN_UUID, "name": "prod-db"}, {"id": "x", "name": "test-db"}])
    assert hook.resolve_connection_id("prod-db") == CONN_UUID
    assert hook.resolve_connection_id("  prod-db ") == CONN_UUID


def test_resolve_connection_unknown_lists_close_matches(hook, api):
    api.get(
        CONNS,
        json=[
            {"id": "a", "name": "prod-db"},
            {"id": "b", "name": "prod-db2"},
            {"id": "c", "name": "warehouse"},
        ],
    )
    with pytest.raises(DataMasqueNotFoundError) as info:
        hook.resolve_connection_id("prod_db")
    text = str(info.value)
    assert "No DataMasque connection named 'prod_db'" in text
    assert "'prod-db'" in text
    assert "'prod-db2'" in text
    assert "warehouse" not in text


def test_resolve_connection_unknown_without_close_matches(hook, api):
    api.get(CONNS, json=[{"id": "c", "name": "warehouse"}])
    with pytest.raises(DataMasqueNotFoundError) as info:
        hook.resolve_connection_id("zz")
    assert "Close matches" not in str(info.value)


def test_resolve_connection_ambiguous(hook, api):
    api.get(CONNS, json=[{"id": "a1", "name": "dup"}, {"id": "b2", "name": "dup"}])
    with pytest.raises(DataMasqueConfigError) as info:
        hook.resolve_connection_id("dup")
    assert "ambiguous" in str(info.value)
    assert "a1" in str(info.value)
    assert "b2" in str(info.value)
    assert "UUID" in str(info.value)


@pytest.mark.parametrize("bad", ["", "   ", None, 5])
def test_resolve_connection_rejects_empty(hook, requests_mock, bad):
    with pytest.raises(DataMasqueConfigError):
        hook.resolve_connection_id(bad)
    assert requests_mock.request_history == []


# -- filesets -------------------------------------------------------------------------------------


def test_list_filesets(hook, api):
    api.get(FILESETS, json=[{"id": "f1", "name": "mysql-tls"}])
    assert hook.list_connection_filesets() == [{"id": "f1", "name": "mysql-tls"}]


def test_create_fileset_multipart(hook, api):
    api.post(FILESETS, status_code=201, json={"id": "f1"})
    assert hook.create_connection_fileset("mysql-tls", "mysql", b"PK\x03\x04zipdata") == {"id": "f1"}
    request = api.last_request
    assert request.headers["Content-Type"].startswith("multipart/form-data")
    body = request.body
    assert b'name="name"\r\n\r\nmysql-tls' in body
    assert b'name="database_type"\r\n\r\nmysql' in body
    assert b'name="zip_archive"; filename="fileset.zip"' in body
    assert b"Content-Type: application/zip" in body
    assert b"PK\x03\x04zipdata" in body


def test_update_fileset_multipart_put(hook, api):
    api.put(f"{FILESETS}f1/", json={"id": "f1"})
    hook.update_connection_fileset("f1", "renamed", "mysql", io.BytesIO(b"zipbytes"), filename="new.zip")
    request = api.last_request
    assert request.method == "PUT"
    assert b'name="name"\r\n\r\nrenamed' in request.body
    assert b'filename="new.zip"' in request.body
    assert b"zipbytes" in request.body


def test_fileset_upload_replayed_with_whole_file(hook, api):
    api.put(f"{FILESETS}f1/", [{"status_code": 503, "text": ""}, {"json": {"id": "f1"}}])
    hook.update_connection_fileset("f1", "n", "mysql", io.BytesIO(b"whole-zip-content"))
    first, second = calls(api, "PUT", "/api/connection-filesets/f1/")
    assert b"whole-zip-content" in first.body
    assert b"whole-zip-content" in second.body


def test_delete_fileset(hook, api):
    api.delete(f"{FILESETS}f1/", status_code=204)
    hook.delete_connection_fileset("f1")
    api.delete(f"{FILESETS}f2/", status_code=404, json={"detail": "Not found."})
    hook.delete_connection_fileset("f2")
    assert [r.path for r in api.request_history if r.method == "DELETE"] == [
        "/api/connection-filesets/f1/",
        "/api/connection-filesets/f2/",
    ]

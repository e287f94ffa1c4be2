"""Auth, users, system endpoints, connections, rulesets, uploads, keep-alive and the public helpers."""

from __future__ import annotations

import http.client
import json
import time
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import requests

from airflow_provider_datamasque.emulator import ApiError, DataMasqueEmulator
from airflow_provider_datamasque.emulator.samples import POSTGRES_CONNECTION as PG


def test_unauthenticated_and_bad_tokens_get_401(emu: DataMasqueEmulator) -> None:
    resp = requests.get(emu.url + "/api/runs/", timeout=5)
    assert resp.status_code == 401
    assert resp.json() == {"detail": "Authentication credentials were not provided."}
    bad = requests.get(emu.url + "/api/runs/", headers={"Authorization": "Token deadbeef"}, timeout=5)
    assert bad.status_code == 401 and bad.json() == {"detail": "Invalid token."}


def test_login_json_and_form_and_wrong_password(emu: DataMasqueEmulator) -> None:
    url = emu.url + "/api/auth/token/login/"
    as_json = requests.post(url, json={"username": "admin", "password": emu.password}, timeout=5).json()
    assert set(as_json) >= {"id", "key", "client_ip", "date_time_expires"} and len(as_json["key"]) == 40
    as_form = requests.post(url, data={"username": "admin", "password": emu.password}, timeout=5)
    assert as_form.status_code == 200
    wrong = requests.post(url, json={"username": "admin", "password": "nope"}, timeout=5)
    assert wrong.status_code == 400
    assert wrong.json() == {"non_field_errors": ["Unable to log in with provided credentials."]}
    headers = {"Authorization": f"Token {as_json['key']}"}
    assert requests.post(emu.url + "/api/auth/token/logout/", headers=headers, timeout=5).status_code == 204
    assert requests.get(emu.url + "/api/users/me/", headers=headers, timeout=5).status_code == 401


def test_users_and_api_token(emu: DataMasqueEmulator) -> None:
    headers = {"Authorization": f"Token {emu.api_token}"}
    me = requests.get(emu.url + "/api/users/me/", headers=headers, timeout=5).json()
    assert me["api_token"] == emu.api_token and len(emu.api_token) == 40
    assert me["username"] == "admin" and me["is_superuser"] is True
    users = requests.get(emu.url + "/api/users/", headers=headers, timeout=5).json()
    assert [u["username"] for u in users] == ["admin"]
    install = requests.post(emu.url + "/api/users/admin-install/", json={}, timeout=5)
    assert install.status_code == 401


def test_health_app_check_and_license(emu: DataMasqueEmulator, api: Any) -> None:
    for path in ("/api/healthcheck/", "/api/health-check/", "/api/healthcheck"):
        body = requests.get(emu.url + path, timeout=5).json()
        assert body["worker_running"] is True and body["license_expired"] is False
    assert requests.get(emu.url + "/api/app/check/", timeout=5).json()["installed"] is True
    upload = api.post("/api/license-upload/", files={"license_file": ("dm.lic", b"LICENSE")})
    assert upload.status_code == 200
    assert api.post("/api/license-upload/", files={"other": ("x", b"1")}).status_code == 400


def test_malformed_json_unknown_path_and_method(api: Any) -> None:
    resp = api.post("/api/connections/", data=b"{not json", headers={"Content-Type": "application/json"})
    assert resp.status_code == 400 and resp.json()["detail"].startswith("JSON parse error - ")
    assert api.get("/api/nope/").status_code == 404
    assert api.call("DELETE", "/api/runs/").status_code == 405


def test_connection_validation_secrets_and_uniqueness(api: Any) -> None:
    missing = api.post("/api/connections/", json={"name": "x", "db_type": "postgres"})
    assert missing.status_code == 400
    assert set(missing.json()) == {"host", "port", "database", "user", "dbpassword"}
    assert api.post("/api/connections/", json=PG | {"db_type": "foo"}).json()["db_type"]
    created = api.post("/api/connections/", json=PG)
    assert created.status_code == 201
    conn = created.json()
    assert "s3cret" not in created.text and "dbpassword" not in conn and "password" not in conn
    dup = api.post("/api/connections/", json=PG)
    assert dup.status_code == 400 and "name" in dup.json()
    ref_style = PG | {"name": "oracle", "db_type": "oracle", "password": "pw"}
    del ref_style["dbpassword"]
    assert api.post("/api/connections/", json=ref_style).status_code == 201
    listing = api.get("/api/connections/").json()
    assert isinstance(listing, list) and len(listing) == 2 and "s3cret" not in json.dumps(listing)
    patched = api.call("PATCH", f"/api/connections/{conn['id']}/", json={"host": "new.example.com"}).json()
    assert patched["host"] == "new.example.com" and patched["port"] == 5432
    put = api.call("PUT", f"/api/connections/{conn['id']}/", json=PG | {"name": "pg-renamed"})
    assert put.status_code == 200 and put.json()["name"] == "pg-renamed"
    assert api.call("DELETE", f"/api/connections/{conn['id']}/").status_code == 204
    assert api.get(f"/api/connections/{conn['id']}/").status_code == 404


def test_file_connections(api: Any) -> None:
    azure = {"name": "az", "type": "azure_blob_connection", "base_directory": "", "mask_type": "file"}
    assert set(api.post("/api/connections/", json=azure).json()) == {"container", "connection_string"}
    ok = api.post("/api/connections/", json=azure | {"container": "c", "connection_string": "SECRET=1"})
    assert ok.status_code == 201 and "SECRET" not in ok.text
    assert api.post("/api/connections/", json={"name": "s3", "type": "s3_connection"}).status_code == 400
    bad_type = api.post("/api/connections/", json={"name": "x", "type": "ftp", "base_directory": ""})
    assert "type" in bad_type.json()


def test_connection_test_endpoints(api: Any) -> None:
    good = api.post("/api/connections/", json=PG).json()
    bad = api.post("/api/connections/", json=PG | {"name": "bad", "host": "db.invalid"}).json()
    assert api.post(f"/api/connections/{good['id']}/test/", json={}).json() == {}
    fail = api.post(f"/api/connections/{bad['id']}/test/", json={})
    assert fail.status_code == 400 and fail.json() == {"detail": "DNS lookup for db.invalid failed."}
    unsaved = api.post("/api/connections/test/", json=PG | {"host": "unreachable-db"})
    assert unsaved.status_code == 400 and "DNS lookup" in unsaved.json()["detail"]
    assert api.post("/api/connections/test/", json=PG).status_code == 200
    assert api.post("/api/connections/nope/test/", json={}).status_code == 404


def test_rulesets_validation_upsert_and_crud(api: Any, mask_yaml: str) -> None:
    created = api.post("/api/rulesets/", json={"name": "r", "config_yaml": mask_yaml})
    assert created.status_code == 201 and created.json()["is_valid"] == "valid"
    rid = created.json()["id"]
    assert api.post("/api/rulesets/", json={"name": "r", "config_yaml": mask_yaml}).status_code == 400
    upsert = api.post("/api/rulesets/?upsert=true", json={"name": "r", "config_yaml": "tasks: [\n"})
    assert upsert.status_code == 200 and upsert.json()["id"] == rid
    body = upsert.json()
    assert body["is_valid"] == "invalid"
    error = body["validation_errors"][0]
    assert set(error) == {"message", "validation_error_type", "line_number", "column_number"}
    assert error["line_number"] == 2
    unknown = api.post(
        "/api/rulesets/?upsert=true",
        json={
            "name": "u",
            "config_yaml": "version: '1.0'\ntasks:\n  - type: mask_table\n    table: t\n  - type: boom\n",
        },
    ).json()
    assert (
        unknown["validation_errors"][0]["line_number"] == 5
        and "boom" in unknown["validation_errors"][0]["message"]
    )
    file_rs = api.post("/api/rulesets/", json={"name": "r", "config_yaml": mask_yaml, "mask_type": "file"})
    assert file_rs.status_code == 201  # same name, other mask_type
    for path in ("/api/rulesets/", "/api/v2/rulesets/"):
        listing = api.get(path).json()
        assert isinstance(listing, list) and len(listing) == 3 and "config_yaml" in listing[0]
    patched = api.call("PATCH", f"/api/rulesets/{rid}/", json={"config_yaml": mask_yaml}).json()
    assert patched["is_valid"] == "valid" and patched["name"] == "r"
    assert (
        api.call("PUT", f"/api/rulesets/{rid}/", json={"name": "r2", "config_yaml": mask_yaml}).status_code
        == 200
    )
    assert api.get(f"/api/rulesets/{rid}/").json()["name"] == "r2"
    assert api.call("DELETE", f"/api/rulesets/{rid}/").status_code == 204
    assert api.call("DELETE", f"/api/rulesets/{rid}/").status_code == 404
    assert api.post("/api/rulesets/", json={"name": "x"}).json() == {
        "config_yaml": ["This field is required."]
    }


def test_multipart_seed_upload_fileset_and_wallet(api: Any) -> None:
    big = b"name,value\n" + b"alice,1\n" * (3 * 1024 * 1024 // 8)
    resp = api.post(
        "/api/seeds/", files={"seed_file": ("names.csv", big, "text/csv")}, data={"name": "names"}
    )
    assert resp.status_code == 201
    seed = resp.json()
    assert seed["name"] == "names" and seed["filename"] == "names.csv" and seed["size"] == len(big)
    assert {"id", "seed_file", "created_date"} <= set(seed)
    assert api.get(f"/api/seeds/{seed['id']}/").json()["size"] == len(big)
    assert [s["name"] for s in api.get("/api/seeds/").json()] == ["names"]
    assert api.post("/api/seeds/", data={"name": "x"}, files={"other": ("a", b"b")}).status_code == 400
    fileset = api.post(
        "/api/connection-filesets/",
        data={"name": "tls", "database_type": "mysql"},
        files={"zip_archive": ("tls.zip", b"PK\x03\x04")},
    )
    assert fileset.status_code == 201
    fid = fileset.json()["id"]
    update = api.call(
        "PUT",
        f"/api/connection-filesets/{fid}/",
        json={"name": "tls2", "database_type": "mysql", "zip_archive": "/x.zip"},
    )
    assert update.json()["name"] == "tls2"
    assert api.call("DELETE", f"/api/connection-filesets/{fid}/").status_code == 204
    wallet = api.post("/api/oracle-wallets/", files={"wallet": ("w.zip", b"W")}, data={"name": "w"})
    assert wallet.status_code == 201 and len(api.get("/api/oracle-wallets/").json()) == 1
    assert api.call("DELETE", f"/api/oracle-wallets/{wallet.json()['id']}/").status_code == 204


def test_keep_alive_thousands_of_requests_on_one_connection(emu: DataMasqueEmulator) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=5)
    headers = {"Authorization": f"Token {emu.api_token}"}
    started = time.perf_counter()
    for _ in range(2000):
        conn.request("GET", "/api/connections/", headers=headers)
        resp = conn.getresponse()
        assert resp.status == 200 and resp.read() == b"[]"
    elapsed = time.perf_counter() - started
    conn.close()
    assert emu.connections_accepted == 1
    assert elapsed / 2000 < 0.005, f"{elapsed / 2000 * 1000:.2f} ms per request"


def test_public_helpers(emu: DataMasqueEmulator) -> None:
    assert emu.url == f"http://127.0.0.1:{emu.port}" and not emu.url.endswith("/")
    conn = json.loads(emu.connection_json())
    assert conn == {"conn_type": "datamasque", "host": emu.url, "login": "admin", "password": emu.password}
    uri = urlsplit(emu.connection_uri())
    assert uri.scheme == "datamasque" and uri.port == emu.port and uri.query == "scheme=http"
    assert unquote(uri.password or "") == emu.password and uri.username == "admin"
    with pytest.raises(ApiError) as excinfo:
        emu.create_connection(name="x")
    assert excinfo.value.status == 400
    with pytest.raises(KeyError):
        emu.get_run(12345)


def test_context_manager_stops_and_frees_the_port() -> None:
    with DataMasqueEmulator(port=0) as emu:
        port = emu.port
        assert requests.get(emu.url + "/api/healthcheck/", timeout=5).ok
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/api/healthcheck/", timeout=2)

"""Users, seeds, Oracle wallets, installation, licence, health checks, and test_connection()."""

from __future__ import annotations

import io

import pytest
import requests

from airflow_provider_datamasque.hooks.errors import (
    DataMasqueApiError,
    DataMasqueAuthError,
    DataMasqueNotReadyError,
)

from ._support import BASE, LOGIN_URL, PASSWORD, TOKEN, USERNAME, calls, login_calls

SEEDS = f"{BASE}/api/seeds/"
WALLETS = f"{BASE}/api/oracle-wallets/"


# -- users ----------------------------------------------------------------------------------------


def test_list_users(hook, api):
    api.get(f"{BASE}/api/users/", json={"next": None, "results": [{"id": 1, "username": "admin"}]})
    assert hook.list_users() == [{"id": 1, "username": "admin"}]
    assert api.last_request.headers["Authorization"] == f"Token {TOKEN}"


def test_get_current_user(hook, api):
    api.get(f"{BASE}/api/users/me/", json={"id": 1, "username": "admin", "api_token": "t" * 40})
    assert hook.get_current_user()["username"] == "admin"
    assert api.last_request.method == "GET"


def test_hook_login_returns_token(hook, api):
    assert hook.login() == TOKEN
    (login,) = login_calls(api)
    assert login.json() == {"username": USERNAME, "password": PASSWORD}


# -- seeds ----------------------------------------------------------------------------------------


def test_list_and_get_seeds(hook, api):
    api.get(SEEDS, json=[{"id": 1, "name": "names.csv"}])
    api.get(f"{SEEDS}1/", json={"id": 1, "name": "names.csv"})
    assert hook.list_seeds() == [{"id": 1, "name": "names.csv"}]
    assert hook.get_seed(1) == {"id": 1, "name": "names.csv"}


def _streamed_body(request):
    """The multipart body the hook streamed (iterating it again replays it from the start)."""
    return b"".join(request.body)


def test_upload_seed_multipart(hook, api):
    api.post(SEEDS, status_code=201, json={"id": 2, "name": "names"})
    result = hook.upload_seed("names", io.BytesIO(b"first\nAda\nGrace\n"), description="first names")
    assert result == {"id": 2, "name": "names"}
    request = api.last_request
    body = _streamed_body(request)
    assert request.headers["Content-Type"].startswith("multipart/form-data")
    assert int(request.headers["Content-Length"]) == len(body)
    assert b'name="seed_file"; filename="names"' in body
    assert b"Content-Type: text/csv" in body
    assert b"first\nAda\nGrace\n" in body
    assert b'name="name"\r\n\r\nnames' in body
    assert b'name="description"\r\n\r\nfirst names' in body


def test_upload_seed_filename_and_no_description(hook, api):
    api.post(SEEDS, status_code=201, json={"id": 3})
    hook.upload_seed("cities", b"city\nOslo\n", filename="cities.csv")
    body = _streamed_body(api.last_request)
    assert b'filename="cities.csv"' in body
    assert b'name="description"' not in body


def test_upload_seed_not_retried_on_503(hook, api):
    api.post(SEEDS, status_code=503, text="")
    with pytest.raises(DataMasqueApiError):
        hook.upload_seed("x", b"a\n")
    assert len(calls(api, "POST", "/api/seeds/")) == 1


# -- Oracle wallets -------------------------------------------------------------------------------


def test_oracle_wallets(hook, api):
    api.get(WALLETS, json=[{"id": 4, "name": "w"}])
    api.post(WALLETS, status_code=201, json={"id": 5, "name": "w2"})
    api.delete(f"{WALLETS}5/", status_code=204)
    api.delete(f"{WALLETS}6/", status_code=404, json={"detail": "Not found."})
    assert hook.list_oracle_wallets() == [{"id": 4, "name": "w"}]
    assert hook.create_oracle_wallet("w2", b"PKwallet") == {"id": 5, "name": "w2"}
    post = calls(api, "POST", "/api/oracle-wallets/")[0]
    assert b'name="name"\r\n\r\nw2' in post.body
    assert b'name="zip_archive"; filename="wallet.zip"' in post.body
    assert b"PKwallet" in post.body
    hook.delete_oracle_wallet(5)
    hook.delete_oracle_wallet(6)
    assert [r.path for r in api.request_history if r.method == "DELETE"] == [
        "/api/oracle-wallets/5/",
        "/api/oracle-wallets/6/",
    ]


# -- installation, licence, health ----------------------------------------------------------------


def test_admin_install_is_unauthenticated(hook, requests_mock):
    requests_mock.post(f"{BASE}/api/users/admin-install/", status_code=201, json={"id": 1})
    result = hook.admin_install(
        email="a@example.com",
        username="admin",
        password="first-admin-pass",
        allowed_hosts=["dm.test"],
        aws_ec2_instance_id="i-123",
    )
    assert result == {"id": 1}
    request = requests_mock.last_request
    assert request.json() == {
        "email": "a@example.com",
        "username": "admin",
        "password": "first-admin-pass",
        "re_password": "first-admin-pass",
        "allowed_hosts": ["dm.test"],
        "aws_ec2_instance_id": "i-123",
    }
    assert "Authorization" not in request.headers
    assert login_calls(requests_mock) == []


def test_admin_install_after_setup_is_auth_error(hook, requests_mock):
    requests_mock.post(
        f"{BASE}/api/users/admin-install/",
        status_code=401,
        json={"detail": "Authentication credentials were not provided."},
    )
    with pytest.raises(DataMasqueAuthError):
        hook.admin_install(email="a@example.com", username="admin", password="first-admin-pass")
    assert "aws_ec2_instance_id" not in requests_mock.last_request.json()
    assert login_calls(requests_mock) == []


def test_app_check(hook, requests_mock):
    requests_mock.get(f"{BASE}/api/app/check/", json={"installed": True})
    assert hook.app_check() == {"installed": True}
    assert "Authorization" not in requests_mock.last_request.headers


def test_upload_licence(hook, api):
    api.post(f"{BASE}/api/license-upload/", json={"detail": "Licence uploaded"})
    assert hook.upload_licence(b"LICENCE-BYTES") == {"detail": "Licence uploaded"}
    body = api.last_request.body
    assert b'name="license_file"; filename="license.lic"' in body
    assert b"LICENCE-BYTES" in body
    assert api.last_request.headers["Authorization"] == f"Token {TOKEN}"


def test_health_check(hook, requests_mock):
    requests_mock.get(f"{BASE}/api/healthcheck/", json={"status": "ok"})
    assert hook.health_check() == {"status": "ok"}
    assert "Authorization" not in requests_mock.last_request.headers
    assert login_calls(requests_mock) == []


def test_health_check_non_dict_body(hook, requests_mock):
    requests_mock.get(f"{BASE}/api/healthcheck/", status_code=200, content=b"")
    assert hook.health_check() == {}


def test_health_check_falls_back_on_404(hook, requests_mock):
    requests_mock.get(f"{BASE}/api/healthcheck/", status_code=404, text="<h1>Not Found</h1>")
    requests_mock.get(f"{BASE}/api/health-check/", json={"healthy": True})
    assert hook.health_check() == {"healthy": True}
    assert [r.path for r in requests_mock.request_history] == ["/api/healthcheck/", "/api/health-check/"]
    # A health check never needs credentials, on either path.
    assert "Authorization" not in requests_mock.last_request.headers


def test_health_check_not_ready(make_hook, requests_mock):
    hook = make_hook(extra={"max_retries": 0})
    requests_mock.get(f"{BASE}/api/healthcheck/", status_code=502, text="<title>502 Bad Gateway</title>")
    with pytest.raises(DataMasqueNotReadyError):
        hook.health_check()


# -- test_connection ------------------------------------------------------------------------------


def test_test_connection_ok(hook, api):
    api.get(f"{BASE}/api/users/me/", json={"username": "admin"})
    ok, message = hook.test_connection()
    assert ok is True
    assert "https://dm.test" in message
    assert "admin" in message


def test_test_connection_unreachable_host(hook, requests_mock):
    requests_mock.post(
        LOGIN_URL,
        exc=requests.exceptions.ConnectionError("Failed to establish a new connection: Connection refused"),
    )
    ok, message = hook.test_connection()
    assert ok is False
    assert "Could not reach DataMasque" in message
    assert "dm.test" in message
    assert PASSWORD not in message


def test_test_connection_bad_credentials(hook, requests_mock):
    requests_mock.post(
        LOGIN_URL, status_code=400, json={"non_field_errors": ["Unable to log in with provided credentials."]}
    )
    ok, message = hook.test_connection()
    assert ok is False
    assert "Unable to log in with provided credentials." in message
    assert PASSWORD not in message


def test_test_connection_unexpected_error_is_an_answer(hook, monkeypatch):
    def boom():
        raise RuntimeError("surprise")

    monkeypatch.setattr(hook, "get_current_user", boom)
    assert hook.test_connection() == (False, "RuntimeError: surprise")


def test_ui_field_behaviour():
    from airflow_provider_datamasque.hooks.datamasque import DataMasqueHook

    behaviour = DataMasqueHook.get_ui_field_behaviour()
    assert behaviour["relabeling"]["host"] == "DataMasque URL"
    assert "api_token" in behaviour["placeholders"]
    assert DataMasqueHook.conn_type == "datamasque"
    assert DataMasqueHook.default_conn_name == "datamasque_default"

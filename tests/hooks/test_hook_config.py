"""Airflow connection -> ClientConfig: URL forms, credentials, extras, TLS."""

from __future__ import annotations

import json

import pytest

from airflow_provider_datamasque.hooks.client import USER_AGENT, ClientConfig, normalize_base_url
from airflow_provider_datamasque.hooks.datamasque import DataMasqueHook, config_from_connection
from airflow_provider_datamasque.hooks.errors import DataMasqueConfigError

from ._support import BASE, CONN_ENV, PASSWORD, TOKEN, login_calls


class FakeConn:
    """The attributes of an Airflow Connection that config_from_connection reads."""

    def __init__(self, host="dm.test", login="admin", password=PASSWORD, port=None, schema=None, extra=None):
        self.conn_id = "dm_conn"
        self.host = host
        self.login = login
        self.password = password
        self.port = port
        self.schema = schema
        self.extra_dejson = extra or {}


def test_json_connection_from_env(make_hook):
    hook = make_hook(host="dm.example.com", extra={"timeout": 30})
    assert hook.config.base_url == "https://dm.example.com"
    assert hook.config.username == "admin"
    assert hook.config.password == PASSWORD
    assert hook.config.read_timeout == 30.0
    assert hook.config.connect_timeout == 10.0
    assert hook.config.retry.max_retries == 3


def test_uri_connection_from_env(monkeypatch):
    monkeypatch.setenv(CONN_ENV, "datamasque://admin:pw-uri-secret@dm.example.com:8443/?verify_ssl=false")
    hook = DataMasqueHook()
    assert hook.config.base_url == "https://dm.example.com:8443"
    assert hook.config.username == "admin"
    assert hook.config.password == "pw-uri-secret"
    assert hook.config.verify is False
    assert hook.client.session.verify is False


def test_uri_connection_with_api_path_is_still_the_root(monkeypatch):
    monkeypatch.setenv(CONN_ENV, "datamasque://admin:pw-uri-secret@dm.example.com/api")
    assert DataMasqueHook().config.base_url == "https://dm.example.com"


@pytest.mark.parametrize(
    ("conn", "expected"),
    [
        (FakeConn(host="dm.test"), "https://dm.test"),
        (FakeConn(host="  dm.test  "), "https://dm.test"),
        (FakeConn(host="https://dm.test/"), "https://dm.test"),
        (FakeConn(host="http://dm.test"), "http://dm.test"),
        (FakeConn(host="dm.test", extra={"scheme": "http"}), "http://dm.test"),
        (FakeConn(host="dm.test", schema="http"), "http://dm.test"),
        (FakeConn(host="dm.test", schema="masking"), "https://dm.test"),
        (FakeConn(host="dm.test", port=8443), "https://dm.test:8443"),
        (FakeConn(host="https://dm.test", port=8443), "https://dm.test:8443"),
        (FakeConn(host="https://dm.test:9000", port=8443), "https://dm.test:9000"),
        (FakeConn(host="https://dm.test/masking", port=8443), "https://dm.test:8443/masking"),
        (FakeConn(host="https://dm.test/api"), "https://dm.test"),
        (FakeConn(host="https://dm.test/api/"), "https://dm.test"),
        (FakeConn(host="https://dm.test/dm/api/"), "https://dm.test/dm"),
        (FakeConn(host="https://user:x@dm.test"), "https://dm.test"),
    ],
)
def test_base_url_forms(conn, expected):
    assert config_from_connection(conn).base_url == expected


def test_http_only_when_asked():
    assert config_from_connection(FakeConn(host="dm.test")).base_url.startswith("https://")
    assert config_from_connection(FakeConn(host="dm.test", extra={"scheme": "http"})).base_url.startswith(
        "http://"
    )


@pytest.mark.parametrize(
    "host",
    [
        "",
        "   ",
        "https://",
        "ftp://dm.test",
        "https://dm test",
        "https://dm.test:99999",
        "https://dm.test:port",
    ],
)
def test_malformed_host_names_the_host_field(host):
    with pytest.raises(DataMasqueConfigError) as info:
        config_from_connection(FakeConn(host=host))
    assert "'host'" in str(info.value)
    assert "dm_conn" in str(info.value)


@pytest.mark.parametrize(("login", "password"), [(None, None), ("admin", None), (None, PASSWORD), ("", "")])
def test_no_credentials(login, password):
    with pytest.raises(DataMasqueConfigError) as info:
        config_from_connection(FakeConn(login=login, password=password))
    text = str(info.value)
    assert "Login" in text
    assert "Password" in text
    assert "api_token" in text


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("timeout", "abc"),
        ("timeout", 0),
        ("timeout", -5),
        ("max_retries", "many"),
        ("max_retries", -1),
        ("max_retries", "2.5"),
        ("retry_backoff", "slow"),
        ("retry_max_wait", 0),
        ("verify_ssl", "maybe"),
        ("verify_ssl", "/no/such/ca-bundle.pem"),
    ],
)
def test_bad_extra_names_the_extra(name, value):
    with pytest.raises(DataMasqueConfigError) as info:
        config_from_connection(FakeConn(extra={name: value}))
    text = str(info.value)
    assert repr(name) in text
    assert "dm_conn" in text
    # The connection id is named once, not repeated.
    assert text.count("Airflow connection") == 1


def test_numeric_extras_as_strings_and_legacy_prefix():
    config = config_from_connection(
        FakeConn(extra={"timeout": "12.5", "extra__datamasque__max_retries": "7", "retry_backoff": "0.5"})
    )
    assert config.read_timeout == 12.5
    assert config.connect_timeout == 10.0
    assert config.retry.max_retries == 7
    assert config.retry.backoff == 0.5


def test_short_timeout_caps_connect_timeout():
    config = config_from_connection(FakeConn(extra={"timeout": 3}))
    assert config.read_timeout == 3.0
    assert config.connect_timeout == 3.0


def test_extra_that_is_not_json():
    class BadExtra(FakeConn):
        @property
        def extra_dejson(self):
            raise json.JSONDecodeError("bad", "x", 0)

        @extra_dejson.setter
        def extra_dejson(self, value):
            pass

    with pytest.raises(DataMasqueConfigError, match="Extra"):
        config_from_connection(BadExtra())


@pytest.mark.parametrize(
    ("value", "expected"), [(False, False), ("false", False), ("0", False), ("no", False)]
)
def test_verify_ssl_off(make_hook, value, expected):
    hook = make_hook(extra={"verify_ssl": value})
    assert hook.config.verify is expected
    assert hook.client.session.verify is expected


@pytest.mark.parametrize("value", [True, "true", "1", "yes", None])
def test_verify_ssl_on(make_hook, value):
    hook = make_hook(extra={"verify_ssl": value})
    assert hook.config.verify is True
    assert hook.client.session.verify is True


def test_verify_ssl_ca_bundle(make_hook, tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    hook = make_hook(extra={"verify_ssl": str(bundle)})
    assert hook.config.verify == str(bundle)
    assert hook.client.session.verify == str(bundle)


def test_session_headers(hook):
    session = hook.client.session
    assert session.headers["User-Agent"] == USER_AGENT
    assert USER_AGENT.startswith("airflow-provider-datamasque/")
    from airflow_provider_datamasque import __version__

    assert f"airflow-provider-datamasque/{__version__}" == USER_AGENT
    assert session is hook.client.session  # one pooled session per hook


def test_api_token_is_used_without_login(make_hook, requests_mock):
    hook = make_hook(login=None, password=None, extra={"api_token": TOKEN})
    requests_mock.get(f"{BASE}/api/users/me/", json={"username": "robot"})
    assert hook.get_current_user() == {"username": "robot"}
    assert login_calls(requests_mock) == []
    assert requests_mock.last_request.headers["Authorization"] == f"Token {TOKEN}"


def test_config_repr_hides_secrets(make_hook):
    hook = make_hook(extra={"api_token": TOKEN})
    for text in (repr(hook.config), str(hook.config), repr(hook.client.config)):
        assert PASSWORD not in text
        assert TOKEN not in text
        assert "dm.test" in text


def test_client_config_requires_credentials_directly():
    with pytest.raises(DataMasqueConfigError):
        ClientConfig(base_url="https://dm.test")
    assert ClientConfig(base_url="dm.test", api_token=TOKEN).base_url == "https://dm.test"


def test_normalize_base_url_default_scheme():
    assert normalize_base_url("dm.test:8443/") == "https://dm.test:8443"
    assert normalize_base_url("dm.test", default_scheme="http") == "http://dm.test"


def test_run_url_uses_ui_url(make_hook):
    assert make_hook().run_url(42) == f"{BASE}/run-logs/42/"
    hook = make_hook(extra={"ui_url": "https://ui.dm.test/"})
    assert hook.run_url(7) == "https://ui.dm.test/run-logs/7/"

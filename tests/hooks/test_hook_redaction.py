"""Secrets never reach exception text, even when DataMasque echoes them back."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from airflow_provider_datamasque.hooks.errors import DataMasqueError
from airflow_provider_datamasque.hooks.redact import (
    REDACTED,
    SecretScrubber,
    is_sensitive_key,
    redact_value,
    sensitive_values,
)

from ._support import BASE, CONN_UUID, LOGIN_URL, PASSWORD, RULESET_UUID, TOKEN

RUN_SECRET = "run-secret-0123456789-abcdef"
DB_PASSWORD = "db-hunter2-password"
CONN_STRING = "DefaultEndpointsProtocol=https;AccountKey=azure-key-xyz987"


def every_text(exc: BaseException) -> str:
    """Everything about an exception a log line, XCom or the UI could show."""
    parts: list[Any] = [str(exc), repr(exc), *exc.args]
    for name in ("detail", "body", "message"):
        if hasattr(exc, name):
            parts.append(json.dumps(getattr(exc, name), default=str))
    return "\n".join(str(p) for p in parts)


def assert_no_secrets(exc: BaseException, *secrets: str) -> None:
    text = every_text(exc)
    for secret in secrets:
        assert secret not in text, f"secret leaked: {secret!r} in {text!r}"


ECHO_BODIES = [
    lambda s: {"detail": f"Bad value {s}"},
    lambda s: {"non_field_errors": [f"nope {s}"]},
    lambda s: {"error": f"{s} is wrong"},
    lambda s: {"options": {"run_secret": [f"{s} too weak"]}, "note": [f"you sent {s}"]},
    lambda s: {"password": s, "dbpassword": s, "connection_string": s},
]


@pytest.mark.parametrize("body", ECHO_BODIES)
def test_failed_login_never_shows_the_password(hook, requests_mock, body):
    requests_mock.post(LOGIN_URL, status_code=400, json=body(PASSWORD))
    with pytest.raises(DataMasqueError) as info:
        hook.login()
    assert_no_secrets(info.value, PASSWORD)


@pytest.mark.parametrize("status", [400, 401, 500])
def test_failed_login_plain_text_echo(hook, requests_mock, status):
    requests_mock.post(
        LOGIN_URL,
        status_code=status,
        text=f"login failed for admin with password {PASSWORD}",
        headers={"Content-Type": "text/plain"},
    )
    with pytest.raises(DataMasqueError) as info:
        hook.login()
    assert_no_secrets(info.value, PASSWORD)


def test_html_error_page_echoing_the_token(hook, api):
    api.get(
        f"{BASE}/api/runs/1/",
        status_code=500,
        text=f"<html><title>Error for Token {TOKEN}</title></html>",
        headers={"Content-Type": "text/html"},
    )
    with pytest.raises(DataMasqueError) as info:
        hook.get_run(1)
    assert_no_secrets(info.value, TOKEN, PASSWORD)


@pytest.mark.parametrize("body", ECHO_BODIES)
def test_login_token_never_shown(hook, api, body):
    api.get(f"{BASE}/api/runs/1/", status_code=400, json=body(TOKEN))
    with pytest.raises(DataMasqueError) as info:
        hook.get_run(1)
    assert_no_secrets(info.value, TOKEN)


def test_api_token_extra_never_shown(make_hook, requests_mock):
    token = "9" * 40
    hook = make_hook(login=None, password=None, extra={"api_token": token})
    requests_mock.get(f"{BASE}/api/runs/1/", status_code=401, json={"detail": f"Invalid token {token}"})
    with pytest.raises(DataMasqueError) as info:
        hook.get_run(1)
    assert_no_secrets(info.value, token)


@pytest.mark.parametrize("body", ECHO_BODIES)
@pytest.mark.parametrize("status", [400, 409, 500])
def test_run_secret_never_shown(hook, api, body, status):
    api.post(f"{BASE}/api/runs/", status_code=status, json=body(RUN_SECRET))
    api.get(f"{BASE}/api/runs/", json=[])
    with pytest.raises(DataMasqueError) as info:
        hook.start_run(
            connection=CONN_UUID, ruleset=RULESET_UUID, name="r", options={"run_secret": RUN_SECRET}
        )
    assert_no_secrets(info.value, RUN_SECRET)


def test_run_secret_in_html_echo(hook, api):
    api.post(
        f"{BASE}/api/runs/",
        status_code=400,
        text=f"<html><title>rejected {RUN_SECRET}</title></html>",
        headers={"Content-Type": "text/html"},
    )
    with pytest.raises(DataMasqueError) as info:
        hook.start_run(
            connection=CONN_UUID, ruleset=RULESET_UUID, name="r", options={"run_secret": RUN_SECRET}
        )
    assert_no_secrets(info.value, RUN_SECRET)


@pytest.mark.parametrize("body", ECHO_BODIES)
def test_connection_secrets_never_shown(hook, api, body):
    config = {"name": "c", "db_type": "postgres", "dbpassword": DB_PASSWORD, "connection_string": CONN_STRING}
    api.post(
        f"{BASE}/api/connections/", status_code=400, json={"a": body(DB_PASSWORD), "b": body(CONN_STRING)}
    )
    with pytest.raises(DataMasqueError) as info:
        hook.create_datamasque_connection(config)
    assert_no_secrets(info.value, DB_PASSWORD, CONN_STRING)


def test_connection_test_echo_never_shown(hook, api):
    config = {"name": "c", "dbpassword": DB_PASSWORD}
    api.post(
        f"{BASE}/api/connections/test/",
        status_code=400,
        text=f"could not connect with password={DB_PASSWORD}",
        headers={"Content-Type": "text/plain"},
    )
    with pytest.raises(DataMasqueError) as info:
        hook.test_datamasque_connection(config=config)
    assert_no_secrets(info.value, DB_PASSWORD)


def test_transport_error_text_is_scrubbed(hook, api):
    api.get(
        f"{BASE}/api/runs/1/",
        exc=requests.exceptions.ConnectionError(f"proxy said: bad header Token {TOKEN}"),
    )
    with pytest.raises(DataMasqueError) as info:
        hook.get_run(1)
    assert_no_secrets(info.value, TOKEN)


def test_non_json_success_echo_is_scrubbed(hook, api):
    api.get(f"{BASE}/api/runs/1/", text=f"weird body with {TOKEN}", headers={"Content-Type": "text/plain"})
    with pytest.raises(DataMasqueError) as info:
        hook.get_run(1)
    assert_no_secrets(info.value, TOKEN)


def test_bad_run_secret_message(hook, requests_mock):
    with pytest.raises(DataMasqueError) as info:
        hook.start_run(connection=CONN_UUID, ruleset=RULESET_UUID, options={"run_secret": "short-secret"})
    assert_no_secrets(info.value, "short-secret")


def test_secrets_are_registered_with_airflow_masker(make_hook, api, monkeypatch):
    masked: list[str] = []
    from airflow_provider_datamasque.hooks.client import DataMasqueClient

    hook = make_hook()
    hook.__dict__["client"] = DataMasqueClient(hook.config, mask_secret=masked.append)
    assert PASSWORD in masked
    hook.login()
    assert TOKEN in masked
    api.post(f"{BASE}/api/connections/", status_code=201, json={"id": 1})
    hook.create_datamasque_connection({"name": "c", "dbpassword": DB_PASSWORD})
    assert DB_PASSWORD in masked


def test_config_repr(hook):
    assert PASSWORD not in repr(hook.config)
    assert PASSWORD not in str(hook.config)


# -- redact helpers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "sensitive"),
    [
        ("password", True),
        ("dbPassword", True),
        ("run_secret", True),
        ("api_token", True),
        ("connection_string", True),
        ("private_key", True),
        ("has_run_secret", False),
        ("key_id", False),
        ("disable_instance_secret", False),
        ("name", False),
    ],
)
def test_is_sensitive_key(key, sensitive):
    assert is_sensitive_key(key) is sensitive


def test_redact_value_and_sensitive_values():
    value = {"a": [{"dbpassword": "p1"}, {"b": "keep"}], "token": "t1", "has_run_secret": True}
    assert redact_value(value) == {
        "a": [{"dbpassword": REDACTED}, {"b": "keep"}],
        "token": REDACTED,
        "has_run_secret": True,
    }
    assert sorted(sensitive_values(value)) == ["p1", "t1"]


def test_scrubber_longest_first_and_min_length():
    scrubber = SecretScrubber()
    scrubber.add("abcde", "abcdefgh", "abcd", None, "")
    assert scrubber.scrub("abcdefgh abcde abcd") == f"{REDACTED} {REDACTED} abcd"

"""DataMasqueClient: login, 401 re-login, retries, error mapping, JSON parsing, pagination."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
import requests
import requests_mock

from airflow_provider_datamasque.hooks.client import (
    IDEMPOTENT_METHODS,
    IDEMPOTENT_RETRY_STATUSES,
    RetryPolicy,
    error_message_from_body,
    parse_retry_after,
    should_retry,
)
from airflow_provider_datamasque.hooks.errors import (
    DataMasqueApiError,
    DataMasqueAuthError,
    DataMasqueConflictError,
    DataMasqueError,
    DataMasqueNotFoundError,
    DataMasqueNotReadyError,
    DataMasqueTransportError,
)

from ._support import BASE, LOGIN_URL, PASSWORD, TOKEN, USERNAME, calls, login_calls

ME = f"{BASE}/api/users/me/"
RUNS = f"{BASE}/api/runs/"


# -- login ----------------------------------------------------------------------------------------


def test_login_posts_credentials_and_uses_key(hook, api):
    api.get(ME, json={"username": "admin"})
    assert hook.get_current_user() == {"username": "admin"}
    (login,) = login_calls(api)
    assert login.url == LOGIN_URL
    assert login.json() == {"username": USERNAME, "password": PASSWORD}
    assert "Authorization" not in login.headers
    me = api.request_history[-1]
    assert me.headers["Authorization"] == f"Token {TOKEN}"
    assert me.headers["User-Agent"].startswith("airflow-provider-datamasque/")
    assert me.headers["Accept"] == "application/json"


def test_token_is_reused_across_calls(hook, api):
    api.get(ME, json={"username": "admin"})
    hook.get_current_user()
    hook.get_current_user()
    assert len(login_calls(api)) == 1


def test_login_accepts_older_api_token_field(hook, requests_mock):
    older = "f" * 40
    requests_mock.post(LOGIN_URL, json={"api_token": older})
    assert hook.login() == older
    requests_mock.get(ME, json={"username": "admin"})
    hook.get_current_user()
    assert requests_mock.last_request.headers["Authorization"] == f"Token {older}"


def test_login_without_token_in_body(hook, requests_mock):
    requests_mock.post(LOGIN_URL, json={"id": 3})
    with pytest.raises(DataMasqueApiError, match="without a token"):
        hook.login()


def test_failed_login_is_an_auth_error_without_the_password(hook, requests_mock):
    requests_mock.post(
        LOGIN_URL, status_code=400, json={"non_field_errors": ["Unable to log in with provided credentials."]}
    )
    with pytest.raises(DataMasqueAuthError) as info:
        hook.login()
    text = str(info.value)
    assert "Unable to log in with provided credentials." in text
    assert "'admin'" in text
    assert PASSWORD not in text
    assert info.value.status == 400
    assert info.value.path == "/api/auth/token/login/"
    assert len(login_calls(requests_mock)) == 1  # a rejected login is not retried


def test_login_with_api_token_only_cannot_relogin(make_hook):
    hook = make_hook(login=None, password=None, extra={"api_token": TOKEN})
    with pytest.raises(DataMasqueAuthError, match="api_token"):
        hook.client.login()


# -- 401 ------------------------------------------------------------------------------------------


def test_401_relogs_in_once_and_replays(hook, requests_mock):
    fresh = "e" * 40
    requests_mock.post(LOGIN_URL, [{"json": {"key": TOKEN}}, {"json": {"key": fresh}}])
    requests_mock.get(
        ME, [{"status_code": 401, "json": {"detail": "Invalid token."}}, {"json": {"username": "admin"}}]
    )
    assert hook.get_current_user() == {"username": "admin"}
    assert len(login_calls(requests_mock)) == 2
    gets = calls(requests_mock, "GET", "/api/users/me/")
    assert [r.headers["Authorization"] for r in gets] == [f"Token {TOKEN}", f"Token {fresh}"]


def test_second_401_is_an_auth_error(hook, api):
    api.get(ME, status_code=401, json={"detail": "Invalid token."})
    with pytest.raises(DataMasqueAuthError) as info:
        hook.get_current_user()
    assert "Invalid token." in str(info.value)
    assert info.value.status == 401
    assert len(login_calls(api)) == 2
    assert len(calls(api, "GET", "/api/users/me/")) == 2


def test_401_with_api_token_only_does_not_login(make_hook, requests_mock):
    hook = make_hook(login=None, password=None, extra={"api_token": TOKEN})
    requests_mock.get(ME, status_code=401, json={"detail": "Invalid token."})
    with pytest.raises(DataMasqueAuthError):
        hook.get_current_user()
    assert login_calls(requests_mock) == []
    assert len(calls(requests_mock, "GET", "/api/users/me/")) == 1


def test_403_is_auth_error_without_relogin(hook, api):
    api.get(ME, status_code=403, json={"detail": "You do not have permission."})
    with pytest.raises(DataMasqueAuthError, match="You do not have permission"):
        hook.get_current_user()
    assert len(login_calls(api)) == 1


# -- retries --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (502, DataMasqueNotReadyError),
        (503, DataMasqueApiError),
        (504, DataMasqueApiError),
        (429, DataMasqueApiError),
    ],
)
def test_get_retried_on_gateway_statuses_until_max_retries(hook, api, fake_time, status, error):
    api.get(ME, status_code=status, json={"detail": "busy"})
    with pytest.raises(error) as info:
        hook.get_current_user()
    assert type(info.value) is error
    assert info.value.status == status
    assert len(calls(api, "GET", "/api/users/me/")) == 3 + 1  # max_retries=3
    assert len(fake_time.sleeps) == 3


@pytest.mark.parametrize("status", [502, 503, 504, 429])
def test_get_retry_then_success(hook, api, status):
    api.get(ME, [{"status_code": status, "text": "busy"}, {"json": {"username": "admin"}}])
    assert hook.get_current_user() == {"username": "admin"}
    assert len(calls(api, "GET", "/api/users/me/")) == 2


def test_retry_after_seconds_is_honoured(hook, api, fake_time):
    api.get(
        ME,
        [
            {"status_code": 429, "headers": {"Retry-After": "7"}, "json": {"detail": "slow down"}},
            {"status_code": 503, "headers": {"Retry-After": "2.5"}, "text": ""},
            {"json": {"username": "admin"}},
        ],
    )
    hook.get_current_user()
    assert fake_time.sleeps == [7.0, 2.5]


def test_retry_after_is_capped_by_retry_max_wait(make_hook, api, fake_time):
    hook = make_hook(extra={"retry_max_wait": 5})
    api.get(ME, [{"status_code": 429, "headers": {"Retry-After": "3600"}}, {"json": {}}])
    hook.get_current_user()
    assert fake_time.sleeps == [5.0]


def test_retry_after_http_date():
    when = datetime.now(timezone.utc) + timedelta(seconds=30)
    value = parse_retry_after(format_datetime(when, usegmt=True))
    assert value is not None
    assert 25 <= value <= 31
    assert parse_retry_after("garbage") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("-3") == 0.0


def test_backoff_without_retry_after_is_exponential_and_capped():
    policy = RetryPolicy(max_retries=5, backoff=1.0, max_backoff=10.0)
    for attempt, ceiling in [(0, 1.0), (1, 2.0), (2, 4.0), (3, 8.0), (4, 10.0), (9, 10.0)]:
        for _ in range(20):
            assert ceiling / 2 <= policy.delay(attempt) <= ceiling


@pytest.mark.parametrize(
    "exc",
    [
        requests.exceptions.ConnectionError("Connection aborted. RemoteDisconnected"),
        requests.exceptions.ReadTimeout("read timed out"),
        requests.exceptions.ConnectTimeout("connect timed out"),
    ],
)
def test_get_retried_on_transport_errors_then_transport_error(hook, api, fake_time, exc):
    api.get(ME, exc=exc)
    with pytest.raises(DataMasqueTransportError) as info:
        hook.get_current_user()
    assert "dm.test" in str(info.value)
    assert "/api/users/me/" in str(info.value)
    assert len(calls(api, "GET", "/api/users/me/")) == 4
    assert len(fake_time.sleeps) == 3
    assert info.value.__cause__ is None


def test_transport_error_then_success(hook, api):
    api.get(ME, [{"exc": requests.exceptions.ConnectionError("reset")}, {"json": {"username": "x"}}])
    assert hook.get_current_user() == {"username": "x"}


def test_max_retries_zero_means_one_attempt(make_hook, api):
    hook = make_hook(extra={"max_retries": 0})
    api.get(ME, status_code=503, text="")
    with pytest.raises(DataMasqueApiError):
        hook.get_current_user()
    assert len(calls(api, "GET", "/api/users/me/")) == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_post_run_not_retried_on_server_errors(hook, api, status):
    api.post(RUNS, status_code=status, json={"detail": "gateway"})
    with pytest.raises(DataMasqueApiError) as info:
        hook.client.request_json("POST", "/api/runs/", json_body={"name": "x"})
    assert info.value.status == status
    assert len(calls(api, "POST", "/api/runs/")) == 1


@pytest.mark.parametrize(
    "exc",
    [
        requests.exceptions.ReadTimeout("read timed out"),
        requests.exceptions.ConnectionError("Connection aborted. RemoteDisconnected"),
    ],
)
def test_post_run_not_retried_on_lost_response(hook, api, exc):
    api.post(RUNS, exc=exc)
    with pytest.raises(DataMasqueTransportError):
        hook.client.request_json("POST", "/api/runs/", json_body={"name": "x"})
    assert len(calls(api, "POST", "/api/runs/")) == 1


def test_post_retried_when_connection_refused(hook, api):
    api.post(
        RUNS,
        [
            {"exc": requests.exceptions.ConnectionError("[Errno 111] Connection refused")},
            {"status_code": 201, "json": {"id": 5}},
        ],
    )
    assert hook.client.request_json("POST", "/api/runs/", json_body={"name": "x"}) == {"id": 5}
    assert len(calls(api, "POST", "/api/runs/")) == 2


def test_429_retried_for_post(hook, api, fake_time):
    api.post(
        RUNS,
        [{"status_code": 429, "headers": {"Retry-After": "4"}}, {"status_code": 201, "json": {"id": 9}}],
    )
    assert hook.client.request_json("POST", "/api/runs/", json_body={"name": "x"}) == {"id": 9}
    assert len(calls(api, "POST", "/api/runs/")) == 2
    assert fake_time.sleeps == [4.0]


def test_idempotent_flag_allows_retrying_a_post(hook, api):
    url = f"{BASE}/api/runs/3/cancel/"
    api.post(url, [{"status_code": 503, "text": ""}, {"json": {"id": 3, "status": "cancelling"}}])
    assert hook.cancel_run(3) == {"id": 3, "status": "cancelling"}
    assert len(calls(api, "POST", "/api/runs/3/cancel/")) == 2


@pytest.mark.parametrize("status", [400, 501])
def test_non_retryable_statuses_are_not_retried(hook, api, status):
    api.get(ME, status_code=status, json={"detail": "boom"})
    with pytest.raises(DataMasqueApiError):
        hook.get_current_user()
    assert len(calls(api, "GET", "/api/users/me/")) == 1


def test_get_retried_on_500_until_it_succeeds(hook, api):
    api.get(ME, [{"status_code": 500, "json": {"detail": "db hiccup"}}, {"json": {"username": "admin"}}])
    assert hook.get_current_user() == {"username": "admin"}
    assert len(calls(api, "GET", "/api/users/me/")) == 2


def test_get_500_every_time_gives_up_after_max_retries(hook, api):
    api.get(ME, status_code=500, json={"detail": "boom"})
    with pytest.raises(DataMasqueApiError, match="boom") as info:
        hook.get_current_user()
    assert info.value.status == 500
    assert len(calls(api, "GET", "/api/users/me/")) == 1 + 3  # FAST_EXTRAS max_retries


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "get", "put"])
@pytest.mark.parametrize("status", sorted(IDEMPOTENT_RETRY_STATUSES))
def test_should_retry_idempotent_methods_on_retryable_statuses(method, status):
    assert should_retry(method, status=status) is True


@pytest.mark.parametrize("method", ["POST", "PATCH"])
@pytest.mark.parametrize(
    ("status", "expected"), [(429, True), (500, False), (502, False), (503, False), (504, False)]
)
def test_should_retry_unsafe_methods(method, status, expected):
    assert should_retry(method, status=status) is expected


@pytest.mark.parametrize("status", [200, 201, 204, 400, 401, 403, 404, 409, 501])
def test_should_retry_never_on_other_statuses(status):
    assert should_retry("GET", status=status) is False


@pytest.mark.parametrize(
    ("method", "error", "idempotent", "expected"),
    [
        ("GET", requests.exceptions.ConnectionError("Connection aborted."), None, True),
        ("GET", requests.exceptions.ReadTimeout("x"), None, True),
        ("GET", ValueError("not a transport problem"), None, False),
        ("POST", requests.exceptions.ConnectionError("Connection aborted."), None, False),
        ("POST", requests.exceptions.ReadTimeout("x"), None, False),
        ("POST", requests.exceptions.ConnectTimeout("x"), None, True),
        ("POST", requests.exceptions.ConnectionError("[Errno 111] Connection refused"), None, True),
        ("POST", requests.exceptions.ConnectionError("NameResolutionError(...)"), None, True),
        ("POST", requests.exceptions.ConnectionError("NewConnectionError(...)"), None, True),
        ("POST", requests.exceptions.ConnectionError("Connection aborted."), True, True),
        ("GET", requests.exceptions.ConnectionError("Connection aborted."), False, False),
        ("PUT", DataMasqueTransportError("lost"), None, True),
        ("POST", DataMasqueTransportError("lost"), None, False),
    ],
)
def test_should_retry_errors(method, error, idempotent, expected):
    assert should_retry(method, error=error, idempotent=idempotent) is expected


def test_should_retry_idempotent_override_on_status():
    assert should_retry("POST", status=503, idempotent=True) is True
    assert should_retry("POST", status=500, idempotent=True) is True
    assert should_retry("GET", status=500, idempotent=False) is False
    assert should_retry("GET", status=503, idempotent=False) is False
    assert should_retry("GET", status=429, idempotent=False) is True
    assert {"GET", "PUT", "DELETE"} <= IDEMPOTENT_METHODS
    assert "POST" not in IDEMPOTENT_METHODS


# -- error mapping --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"detail": "Not allowed here."}, "Not allowed here."),
        ({"non_field_errors": ["First problem.", "Second problem."]}, "First problem.; Second problem."),
        ({"error": "Something broke."}, "Something broke."),
        (
            {"ruleset": ["Cannot start run on invalid ruleset."]},
            "ruleset: Cannot start run on invalid ruleset.",
        ),
        (
            {"name": ["This field is required."], "options": ["Bad."]},
            "name: This field is required.; options: Bad.",
        ),
        (["just", "a list"], "just; a list"),
        ("plain string", "plain string"),
    ],
)
def test_error_bodies_become_messages(hook, api, body, expected):
    api.post(f"{BASE}/api/rulesets/", status_code=400, json=body)
    with pytest.raises(DataMasqueApiError) as info:
        hook.create_ruleset("r", "version: '1.0'")
    text = str(info.value)
    assert expected in text
    assert "POST" in text
    assert "/api/rulesets/" in text
    assert "400" in text
    assert info.value.detail == expected
    assert info.value.status == 400
    assert info.value.method == "POST"
    assert info.value.path == "/api/rulesets/"


def test_error_message_from_body_direct():
    assert error_message_from_body(None) == ""
    assert error_message_from_body({"detail": "", "error": "E"}) == "E"
    assert error_message_from_body({"a": {"b": ["deep"]}}) == "a: b: deep"
    assert error_message_from_body(42) == "42"


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, DataMasqueApiError),
        (401, DataMasqueAuthError),
        (403, DataMasqueAuthError),
        (404, DataMasqueNotFoundError),
        (409, DataMasqueConflictError),
        (422, DataMasqueApiError),
        (500, DataMasqueApiError),
        (502, DataMasqueNotReadyError),
    ],
)
def test_status_to_error_type(hook, api, status, error):
    api.get(f"{BASE}/api/runs/1/", status_code=status, json={"detail": f"server says {status}"})
    with pytest.raises(DataMasqueError) as info:
        hook.get_run(1)
    assert type(info.value) is error
    assert f"server says {status}" in str(info.value)
    assert f"HTTP {status}" in str(info.value)
    assert "GET /api/runs/1/" in str(info.value)


def test_502_says_not_ready(hook, api):
    api.get(f"{BASE}/api/runs/1/", status_code=502, text="")
    with pytest.raises(DataMasqueNotReadyError, match="not ready"):
        hook.get_run(1)


def test_html_error_page(hook, api):
    html = "<html><head><title>502 Bad Gateway</title></head><body><h1>nginx</h1></body></html>"
    api.get(f"{BASE}/api/runs/1/", status_code=500, text=html, headers={"Content-Type": "text/html"})
    with pytest.raises(DataMasqueApiError) as info:
        hook.get_run(1)
    exc = info.value
    assert type(exc) is DataMasqueApiError
    text = str(exc)
    assert "502 Bad Gateway" in text
    assert "HTML page" in text
    assert "<html>" not in text
    assert "JSONDecodeError" not in text
    assert exc.body is None
    assert not isinstance(exc.__cause__, ValueError)
    assert exc.__context__ is None or exc.__suppress_context__


def test_non_json_success_body(hook, api):
    api.get(
        f"{BASE}/api/runs/1/",
        status_code=200,
        text="<html><title>Sign in</title></html>",
        headers={"Content-Type": "text/html; charset=utf-8"},
    )
    with pytest.raises(DataMasqueApiError) as info:
        hook.get_run(1)
    exc = info.value
    assert type(exc) is DataMasqueApiError
    assert "Sign in" in str(exc)
    assert "GET /api/runs/1/" in str(exc)
    assert "proxy or login page" in str(exc)
    assert exc.status == 200
    # Raised ``from None``: no JSONDecodeError traceback is shown with it.
    assert exc.__cause__ is None
    assert exc.__suppress_context__ is True


def test_non_json_plain_text_success_body(hook, api):
    api.get(f"{BASE}/api/runs/1/", text="OK then", headers={"Content-Type": "text/plain"})
    with pytest.raises(DataMasqueApiError, match="text/plain"):
        hook.get_run(1)


def test_empty_and_204_bodies_are_none(hook, api):
    api.get(f"{BASE}/api/runs/1/", status_code=204)
    assert hook.client.request_json("GET", "/api/runs/1/") is None
    api.get(f"{BASE}/api/runs/2/", status_code=200, content=b"")
    assert hook.client.request_json("GET", "/api/runs/2/") is None


def test_error_exposes_retry_after_and_redacted_body(hook, api):
    api.get(
        f"{BASE}/api/runs/1/",
        status_code=400,
        headers={"Retry-After": "9"},
        json={"detail": "no", "password": "server-side-secret"},
    )
    with pytest.raises(DataMasqueApiError) as info:
        hook.get_run(1)
    assert info.value.retry_after == 9.0
    assert info.value.body == {"detail": "no", "password": "***"}


# -- pagination -----------------------------------------------------------------------------------


def test_paginate_follows_absolute_next(hook, api):
    api.get(
        f"{BASE}/api/users/",
        json={"count": 3, "next": f"{BASE}/api/users/?page=2", "previous": None, "results": [{"id": 1}]},
        complete_qs=True,
    )
    api.get(
        f"{BASE}/api/users/?page=2",
        json={"count": 3, "next": f"{BASE}/api/users/?page=3", "results": [{"id": 2}]},
        complete_qs=True,
    )
    api.get(
        f"{BASE}/api/users/?page=3", json={"count": 3, "next": None, "results": [{"id": 3}]}, complete_qs=True
    )
    assert hook.list_users() == [{"id": 1}, {"id": 2}, {"id": 3}]
    assert len(calls(api, "GET", "/api/users/")) == 3


@pytest.mark.parametrize(
    "foreign",
    [
        "https://evil.test/api/users/?page=2",  # another host
        "http://dm.test/api/users/?page=2",  # same host, plain HTTP
        "https://dm.test:8443/api/users/?page=2",  # same host, another port
        "//evil.test/api/users/?page=2",  # scheme-relative: another host
        "https://dm.test@evil.test/api/users/?page=2",  # user-info trick
    ],
)
def test_paginate_fetches_foreign_next_from_own_origin(hook, api, foreign):
    # Registered first, so the more specific pages below win for their own URLs.
    other = api.get(requests_mock.ANY, json={"next": None, "results": [{"id": 99}]})
    api.get(f"{BASE}/api/users/", json={"next": foreign, "results": [{"id": 1}]}, complete_qs=True)
    page2 = api.get(
        f"{BASE}/api/users/?page=2", json={"next": None, "results": [{"id": 2}]}, complete_qs=True
    )
    assert hook.list_users() == [{"id": 1}, {"id": 2}]
    assert page2.call_count == 1
    assert other.call_count == 0  # the token never went to the foreign origin


def test_paginate_refuses_foreign_next_without_api_path(hook, api):
    other = api.get(requests_mock.ANY, json={"next": None, "results": [{"id": 2}]})
    api.get(f"{BASE}/api/users/", json={"next": "https://evil.test/steal?page=2", "results": [{"id": 1}]})
    with pytest.raises(DataMasqueApiError, match="another host") as info:
        hook.list_users()
    assert "token" in str(info.value) and TOKEN not in str(info.value)
    assert other.call_count == 0
    assert len(calls(api, "GET", "/api/users/")) == 1


@pytest.mark.parametrize(
    ("link", "fetched"),
    [
        ("/api/users/?page=2", f"{BASE}/api/users/?page=2"),  # relative
        (f"{BASE}/api/users/?page=2", f"{BASE}/api/users/?page=2"),
        # The default port, or upper case, does not make the link foreign.
        ("HTTPS://DM.TEST:443/api/users/?page=2", "https://dm.test:443/api/users/?page=2"),
    ],
)
def test_paginate_follows_relative_or_same_origin_next(hook, api, link, fetched):
    api.get(f"{BASE}/api/users/", json={"next": link, "results": [{"id": 1}]}, complete_qs=True)
    page2 = api.get(fetched, json={"next": None, "results": [{"id": 2}]}, complete_qs=True)
    assert hook.list_users() == [{"id": 1}, {"id": 2}]
    assert page2.call_count == 1


def test_paginate_bare_list(hook, api):
    api.get(f"{BASE}/api/users/", json=[{"id": 1}, {"id": 2}])
    assert hook.list_users() == [{"id": 1}, {"id": 2}]


def test_paginate_rejects_other_shapes(hook, api):
    api.get(f"{BASE}/api/users/", json={"unexpected": True})
    with pytest.raises(DataMasqueApiError, match="neither a list nor"):
        hook.list_users()


def test_paginate_max_pages(hook, api):
    api.get(f"{BASE}/api/runs/", json={"next": f"{BASE}/api/runs/?offset=1", "results": [{"id": 1}]})
    assert list(hook.client.paginate("/api/runs/", max_pages=1)) == [{"id": 1}]
    assert len(calls(api, "GET", "/api/runs/")) == 1


def test_absolute_urls_pass_through(hook):
    assert hook.client.url("https://elsewhere.test/x/") == "https://elsewhere.test/x/"
    assert hook.client.url("/api/runs/") == f"{BASE}/api/runs/"
    assert hook.client.url("api/runs/") == f"{BASE}/api/runs/"


def test_close_drops_the_session(hook):
    first = hook.client.session
    hook.close()
    assert hook.client.session is not first


def test_json_body_is_sent_as_json(hook, api):
    api.post(RUNS, status_code=201, json={"id": 1})
    hook.client.request_json("POST", "/api/runs/", json_body={"a": [1, 2]})
    assert json.loads(api.last_request.body) == {"a": [1, 2]}

"""The one place that builds DataMasque requests and parses their responses.

``ClientCore`` holds what does not depend on the HTTP library: URLs, the auth token and login
answer, secret scrubbing and the answer -> data/error mapping; ``Attempts`` makes the retry and
401 re-login decisions (``should_retry``, ``RetryPolicy``, ``Retry-After``). Two thin transports
drive them: ``DataMasqueClient`` here (a pooled ``requests.Session``, for operators, sensor and
hook) and ``hooks.async_client.AsyncDataMasqueClient`` (aiohttp, for the trigger). The
per-resource parts of the hook (``runs``, ``rulesets``, ``connections``, ...) only say *what* to call.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import astuple, dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol, cast
from urllib.parse import urlsplit

from airflow_provider_datamasque import __version__
from airflow_provider_datamasque.hooks.errors import (
    DataMasqueApiError,
    DataMasqueAuthError,
    DataMasqueConfigError,
    DataMasqueConflictError,
    DataMasqueNotFoundError,
    DataMasqueNotReadyError,
    DataMasqueTransportError,
)
from airflow_provider_datamasque.hooks.redact import SecretScrubber, redact_value, sensitive_values

if TYPE_CHECKING:
    import requests

log = logging.getLogger(__name__)

USER_AGENT = f"airflow-provider-datamasque/{__version__}"
LOGIN_PATH = "/api/auth/token/login/"

#: Statuses that mean "try again later": the request was not processed, or the gateway failed.
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
#: What a request that is safe to repeat is retried on: the above plus 500, which is often a
#: passing fault (a database hiccup behind the API); the Databricks and dbt Cloud providers do the same.
IDEMPOTENT_RETRY_STATUSES = RETRYABLE_STATUSES | {500}
#: Methods that may be repeated without changing the outcome.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})

_insecure_warned = False


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to repeat a request that is safe to repeat."""

    max_retries: int = 5
    backoff: float = 1.0
    max_backoff: float = 60.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based): exponential, with jitter."""
        if retry_after is not None and retry_after >= 0:
            return min(retry_after, self.max_backoff)
        ceiling = min(self.max_backoff, self.backoff * (2**attempt))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


def should_retry(
    method: str,
    *,
    status: int | None = None,
    error: BaseException | None = None,
    idempotent: bool | None = None,
) -> bool:
    """The single retry predicate, shared by every caller (hook, sensor, trigger).

    A 429, or a connection that was never opened, means the server did not act on the request, so
    any method may be repeated. Anything else (500, 502-504, a dropped or timed-out connection)
    may have been processed, so only requests that are safe to repeat are retried; a POST such as
    a run start never is (the caller resolves a lost answer instead).
    """
    if error is not None and is_tls_failure(error):
        return False  # a certificate that failed verification fails again on every retry
    if status == 429 or (error is not None and request_not_sent(error)):
        return True
    safe = method.upper() in IDEMPOTENT_METHODS if idempotent is None else idempotent
    if not safe:
        return False
    if error is not None:
        return is_transport_error(error)
    return status in IDEMPOTENT_RETRY_STATUSES


#: Statuses a watcher may meet in passing while DataMasque is unwell; waiting goes on after them.
WAIT_THROUGH_STATUSES = frozenset({429, 500, 502, 503, 504})


def is_transient(error: BaseException) -> bool:
    """True for failures a run watcher (operator, sensor, trigger) should wait through, not fail on."""
    if isinstance(error, DataMasqueTransportError):
        return True
    return isinstance(error, DataMasqueApiError) and error.status in WAIT_THROUGH_STATUSES


def is_transport_error(error: BaseException) -> bool:
    """True for "no (complete) answer": connection, timeout or broken-body errors of either transport."""
    import requests

    if isinstance(error, requests.ConnectionError | requests.Timeout | DataMasqueTransportError):
        return True
    aiohttp = sys.modules.get("aiohttp")  # only loaded when the async transport is in use
    if aiohttp is not None and isinstance(error, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError):
        return True
    import asyncio

    return isinstance(error, TimeoutError | asyncio.TimeoutError)


def is_tls_failure(error: BaseException) -> bool:
    """The TLS handshake failed (certificate verification, protocol mismatch), on either transport."""
    import requests

    if isinstance(error, requests.exceptions.SSLError):
        return True
    aiohttp = sys.modules.get("aiohttp")
    return aiohttp is not None and isinstance(error, aiohttp.ClientSSLError)


def request_not_sent(error: BaseException) -> bool:
    """True when the request certainly never reached the server (so repeating it is harmless)."""
    import requests

    if isinstance(error, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(error, requests.ConnectionError) and not isinstance(error, requests.Timeout):
        text = repr(error)
        return any(
            marker in text for marker in ("NewConnectionError", "Connection refused", "NameResolutionError")
        )
    aiohttp = sys.modules.get("aiohttp")
    if aiohttp is not None:
        connect_timeout = getattr(aiohttp, "ConnectionTimeoutError", None)  # aiohttp >= 3.10
        if connect_timeout is not None and isinstance(error, connect_timeout):
            return True
        return isinstance(error, aiohttp.ClientConnectorError) and not isinstance(
            error, aiohttp.ClientSSLError
        )
    return False


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


@dataclass
class ClientConfig:
    """Everything needed to talk to one DataMasque instance; built from an Airflow Connection."""

    base_url: str
    username: str | None = None
    password: str | None = None
    api_token: str | None = None
    verify: bool | str = True
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    ui_url: str | None = None

    def __post_init__(self) -> None:
        self.base_url = normalize_base_url(self.base_url)
        if not self.api_token and not (self.username and self.password):
            raise DataMasqueConfigError(
                "DataMasque connection has no credentials: set Login and Password (a DataMasque user) "
                "or the extra field 'api_token'."
            )

    def __repr__(self) -> str:
        # Never let a password or token reach a log line through repr().
        return f"ClientConfig(base_url={self.base_url!r}, username={self.username!r})"

    @cached_property
    def identity(self) -> tuple[Any, ...]:
        """Every setting as one hashable value, equal for equal settings: a shared client's key.

        Cached: ``astuple`` deep-copies, and a thousand triggers starting together each look it up.
        """
        return astuple(self)


def normalize_base_url(url: str, default_scheme: str = "https") -> str:
    """Validate a DataMasque base URL and return it without a trailing slash or ``/api`` suffix."""
    raw = (url or "").strip()
    if not raw:
        raise DataMasqueConfigError(
            "DataMasque connection field 'host' is empty: set it to the DataMasque URL, "
            "for example https://datamasque.example.com"
        )
    if "://" not in raw:
        raw = f"{default_scheme}://{raw}"
    parts = urlsplit(raw)
    try:
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError:
        port_ok = False
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok or " " in raw:
        raise DataMasqueConfigError(
            f"DataMasque connection field 'host' is not a valid URL ({url!r}): use the form "
            "https://datamasque.example.com[:port] (http:// only for a local or test server)"
        )
    path = parts.path.rstrip("/")
    if path.endswith("/api"):
        path = path[: -len("/api")]
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return f"{parts.scheme}://{netloc}{path}"


def error_message_from_body(body: Any) -> str:
    """Pull DataMasque's own words out of an error body: detail, non_field_errors, error, field map."""
    if isinstance(body, str):
        return body.strip()
    if isinstance(body, list):
        return "; ".join(error_message_from_body(item) for item in body if item not in (None, ""))
    if not isinstance(body, Mapping):
        return "" if body is None else str(body)
    for key in ("detail", "non_field_errors", "error", "message"):
        if key in body and body[key] not in (None, "", []):
            return error_message_from_body(body[key])
    parts = []
    for key, value in body.items():
        text = error_message_from_body(value)
        if text:
            parts.append(f"{key}: {text}")
    return "; ".join(parts)


_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
#: How much of a non-JSON body is read, and how much of it is quoted.
_HEAD_BYTES, _SNIPPET_CHARS = 2048, 200


def describe_non_json(response: requests.Response, scrubber: SecretScrubber | None = None) -> str:
    """Readable one-liner for a body that is not JSON (a proxy's HTML page, say).

    Secrets are scrubbed from the decoded text before it is cut and ``repr``-escaped, so an
    escaped (quote, backslash, newline) or cut-off secret cannot slip past; a cut end that starts
    a secret is blanked too.
    """
    ctype = response.headers.get("Content-Type", "unknown content type").split(";")[0]
    head = response.content[:_HEAD_BYTES]
    text = head.decode("utf-8", "replace")
    if scrubber is not None:
        text = scrubber.scrub(text)
    title = _TITLE.search(text)
    snippet = (title.group(1) if title else text).strip().replace("\n", " ")
    if len(snippet) > _SNIPPET_CHARS:
        snippet = snippet[:_SNIPPET_CHARS]
        if scrubber is not None:
            snippet = scrubber.scrub_cut(snippet)
    what = "an HTML page" if "html" in ctype or head.lstrip()[:1] == b"<" else f"a {ctype} body"
    hint = (
        " Check that the connection 'host' is the DataMasque URL and not a proxy or login page."
        if "html" in ctype
        else ""
    )
    return f"DataMasque answered with {what} instead of JSON ({snippet!r}).{hint}"


class Reply(Protocol):
    """What the shared response handling reads: a ``requests.Response`` or an ``AsyncReply``."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def content(self) -> bytes: ...

    def json(self) -> Any: ...


class Attempts:
    """The retry state of one request: decides, after each try, whether and when to try again.

    Transport-neutral, so the sync (requests) and async (aiohttp) transports drive the same
    predicate (``should_retry``), backoff (``RetryPolicy``), ``Retry-After`` handling and 401 rule.
    """

    __slots__ = (
        "attempt",
        "authenticated",
        "client",
        "idempotent",
        "max_retries",
        "method",
        "relogged",
        "url",
    )

    def __init__(
        self,
        client: ClientCore,
        method: str,
        url: str,
        *,
        idempotent: bool | None,
        authenticated: bool,
        retries: int | None,
    ) -> None:
        self.client = client
        self.method = method
        self.url = url
        self.idempotent = idempotent
        self.authenticated = authenticated
        self.max_retries = client.config.retry.max_retries if retries is None else retries
        self.attempt = 0
        self.relogged = False

    def after_error(self, exc: BaseException) -> float:
        """Seconds to wait before the next try after ``exc``; raises when the request may not be repeated."""
        if self.attempt < self.max_retries and should_retry(
            self.method, error=exc, idempotent=self.idempotent
        ):
            wait = self.client.config.retry.delay(self.attempt)
            self.attempt += 1
            log.warning(
                "DataMasque %s %s failed (%s); retry %d/%d in %.1fs",
                self.method,
                _path_of(self.url),
                _exc_summary(exc),
                self.attempt,
                self.max_retries,
                wait,
            )
            return wait
        hint = (
            " The TLS handshake failed: when DataMasque's certificate is signed by a private CA, "
            "set the connection extra verify_ssl to the path of that CA's bundle."
            if is_tls_failure(exc)
            else ""
        )
        raise DataMasqueTransportError(
            self.client.scrubber.scrub(
                f"Could not reach DataMasque at {self.client.config.base_url} "
                f"({self.method} {_path_of(self.url)}): {_exc_summary(exc)}.{hint}"
            )
        ) from None

    def relogin(self, status: int) -> bool:
        """True once per request for a 401 on a login connection: log in again and replay."""
        if status == 401 and self.authenticated and not self.relogged and self.client.config.username:
            # User tokens expire after 12 hours.
            log.info("DataMasque token rejected (401); logging in again")
            self.relogged = True
            return True
        return False

    def retry_wait(self, status: int, headers: Mapping[str, str]) -> float | None:
        """Seconds to wait before repeating a request answered ``status``; None: this is the answer."""
        if self.attempt < self.max_retries and should_retry(
            self.method, status=status, idempotent=self.idempotent
        ):
            wait = self.client.config.retry.delay(self.attempt, parse_retry_after(headers.get("Retry-After")))
            self.attempt += 1
            log.warning(
                "DataMasque %s %s answered %d; retry %d/%d in %.1fs",
                self.method,
                _path_of(self.url),
                status,
                self.attempt,
                self.max_retries,
                wait,
            )
            return wait
        return None


class ClientCore:
    """What both transports share: config, auth token, secret scrubbing, URL and response mapping."""

    def __init__(self, config: ClientConfig, *, mask_secret: Callable[[str], None] | None = None) -> None:
        self.config = config
        self._mask_secret = mask_secret
        self._token: str | None = config.api_token
        self._token_from_login = False
        self._auth_cache: tuple[str, dict[str, str]] | None = None
        self.scrubber = SecretScrubber()
        self._remember_secret(config.password, config.api_token)
        if config.verify is False:
            self._warn_insecure()

    def _remember_secret(self, *values: str | None) -> None:
        self.scrubber.add(*values)
        if self._mask_secret is not None:
            for value in values:
                if value:
                    self._mask_secret(value)

    def _warn_insecure(self) -> None:
        global _insecure_warned
        if not _insecure_warned:
            _insecure_warned = True
            log.warning(
                "TLS certificate verification is OFF for DataMasque at %s (extra verify_ssl=false). "
                "Use a CA bundle path in verify_ssl instead where you can.",
                self.config.base_url,
            )

    def url(self, path: str) -> str:
        if path[:8].lower().startswith(("http://", "https://")):  # a full URL (a next-page link)
            return path
        # Plain joining: the base has no trailing slash, query or fragment (normalize_base_url), and
        # urljoin would read a path segment like "a:b" as a scheme. Runs once per request.
        return f"{self.config.base_url}/{path.lstrip('/')}"

    def _attempts(
        self,
        method: str,
        path: str,
        idempotent: bool | None,
        authenticated: bool,
        retries: int | None = None,
        bodies: tuple[Any, ...] = (),
    ) -> Attempts:
        """Start one request: remember secrets in its bodies, and its retry state."""
        for body in bodies:
            if body is not None:
                self._remember_secret(*sensitive_values(body))
        return Attempts(
            self, method, self.url(path), idempotent=idempotent, authenticated=authenticated, retries=retries
        )

    def _auth_value(self, token: str) -> dict[str, str]:
        """The Authorization header for ``token``; one dict per token, not one per request."""
        cached = self._auth_cache
        if cached is None or cached[0] != token:
            cached = self._auth_cache = (token, {"Authorization": f"Token {token}"})
        return cached[1]

    # -- login ------------------------------------------------------------------------------------

    def _login_body(self) -> dict[str, str]:
        if not (self.config.username and self.config.password):
            raise DataMasqueAuthError(
                "DataMasque rejected the API token and the connection has no Login/Password to log in "
                "with: check the extra 'api_token', or set Login and Password.",
                status=401,
            )
        return {"username": self.config.username, "password": self.config.password}

    def _token_in(self, response: Reply) -> str:
        """The token in a login answer, or the login error naming the connection fields to check."""
        if response.status_code in (400, 401, 403):
            reason = self._error_text(response).rstrip(". ") or "invalid credentials"
            raise DataMasqueAuthError(
                f"DataMasque login failed for user {self.config.username!r}: {reason}. "
                "Check the Login and Password of the Airflow connection.",
                status=response.status_code,
                method="POST",
                path=LOGIN_PATH,
                detail=reason,
            )
        self._raise_for_status(response, "POST", LOGIN_PATH)
        body = self.parse_json(response, "POST", LOGIN_PATH)
        token = (
            body.get("key") or body.get("api_token") or body.get("token") if isinstance(body, dict) else None
        )
        if not isinstance(token, str) or not token:
            raise DataMasqueApiError(
                "DataMasque login answered 200 but without a token (no 'key' or 'api_token' field).",
                status=response.status_code,
                method="POST",
                path=LOGIN_PATH,
            )
        self._remember_secret(token)
        return token

    # -- responses --------------------------------------------------------------------------------

    def parse_json(self, response: Reply, method: str, path: str) -> Any:
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise DataMasqueApiError(
                self.scrubber.scrub(f"{method} {_path_of(path)}: {_describe(response, self.scrubber)}"),
                status=response.status_code,
                method=method,
                path=_path_of(path),
            ) from None

    def _error_text(self, response: Reply) -> str:
        try:
            body = response.json()
        except ValueError:
            return self.scrubber.scrub(_describe(response, self.scrubber))
        return self.scrubber.scrub(error_message_from_body(redact_value(body)))

    def _scrub_body(self, value: Any) -> Any:
        """``value`` with known secret strings removed from every string in it, recursively."""
        if isinstance(value, str):
            return self.scrubber.scrub(value)
        if isinstance(value, Mapping):
            return {k: self._scrub_body(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._scrub_body(v) for v in value]
        return value

    def _raise_for_status(self, response: Reply, method: str, path: str) -> None:
        status = response.status_code
        if status < 400:
            return
        if getattr(response, "raw", None) is not None and not getattr(response, "_content_consumed", True):
            # A streamed error body is small; read it so the message can quote the server.
            response.content  # noqa: B018
        detail = self._error_text(response)
        short_path = _path_of(path)
        body: Any
        try:
            body = self._scrub_body(redact_value(response.json()))
        except ValueError:
            body = None
        kwargs: dict[str, Any] = {
            "status": status,
            "method": method,
            "path": short_path,
            "detail": detail,
            "body": body,
            "retry_after": parse_retry_after(response.headers.get("Retry-After")),
        }
        message = self.scrubber.scrub(f"DataMasque {method} {short_path} failed with HTTP {status}: {detail}")
        if status == 502:
            raise DataMasqueNotReadyError(
                message + " (DataMasque is not ready yet: it answers 502 while it starts up)", **kwargs
            )
        if status in (401, 403):
            hint = (
                " Check the credentials of the Airflow connection; an API token only works on some "
                "endpoints, a user login works on all."
            )
            raise DataMasqueAuthError(message + hint, **kwargs)
        if status == 404:
            raise DataMasqueNotFoundError(message, **kwargs)
        if status == 409:
            raise DataMasqueConflictError(message, **kwargs)
        raise DataMasqueApiError(message, **kwargs)


def _describe(response: Reply, scrubber: SecretScrubber) -> str:
    # describe_non_json only reads ``headers`` and ``content``, which every Reply has.
    return describe_non_json(cast("requests.Response", response), scrubber)


class DataMasqueClient(ClientCore):
    """A DataMasque API session over ``requests``: pooled HTTP, token auth, retries, error mapping."""

    def __init__(self, config: ClientConfig, *, mask_secret: Callable[[str], None] | None = None) -> None:
        super().__init__(config, mask_secret=mask_secret)
        self._session: requests.Session | None = None
        self._lock = threading.RLock()

    @property
    def session(self) -> requests.Session:
        if self._session is None:
            import requests

            session = requests.Session()
            session.headers["User-Agent"] = USER_AGENT
            session.headers["Accept"] = "application/json"
            session.verify = self.config.verify
            if self.config.verify is False:
                import urllib3

                urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
            self._session = session
        return self._session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    # -- auth -------------------------------------------------------------------------------------

    def login(self) -> str:
        """Log in with username and password; returns (and keeps) the user token."""
        body = self._login_body()
        response = self.request(
            "POST", LOGIN_PATH, json_body=body, authenticated=False, idempotent=True, check=False
        )
        token = self._token_in(response)
        with self._lock:
            self._token = token
            self._token_from_login = True
        return token

    def _auth_header(self) -> dict[str, str]:
        with self._lock:
            token = self._token
        if token is None:
            token = self.login()
        return self._auth_value(token)

    # -- requests ---------------------------------------------------------------------------------

    def request_json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        return self.parse_json(response, method, path)

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, Any] | None = None,
        data: Any = None,
        files: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        authenticated: bool = True,
        stream: bool = False,
        retries: int | None = None,
        check: bool = True,
    ) -> requests.Response:
        """Send a request, retrying what is safe to retry; raise a ``DataMasqueError`` on failure
        (``check=False``: return an error answer instead, after the retries)."""
        import requests

        method = method.upper()
        attempts = self._attempts(method, path, idempotent, authenticated, retries, (json_body, data))
        while True:
            request_headers = dict(headers or {})
            if authenticated:
                request_headers.update(self._auth_header())
            _rewind(files, data)
            try:
                response = self.session.request(
                    method,
                    attempts.url,
                    json=json_body,
                    params=params,
                    data=data,
                    files=files,
                    headers=request_headers,
                    timeout=(self.config.connect_timeout, self.config.read_timeout),
                    stream=stream,
                    # Per request, not only on the session: requests lets REQUESTS_CA_BUNDLE or
                    # CURL_CA_BUNDLE in the environment override session.verify (a CA bundle
                    # path or False from verify_ssl would be silently ignored).
                    verify=self.config.verify,
                )
            except requests.RequestException as exc:
                time.sleep(attempts.after_error(exc))
                continue
            if attempts.relogin(response.status_code):
                response.close()
                with self._lock:
                    self._token = None
                self.login()
                continue
            wait = attempts.retry_wait(response.status_code, response.headers)
            if wait is not None:
                response.close()
                time.sleep(wait)
                continue
            if check:
                self._raise_for_status(response, method, path)
            return response

    # -- lists ------------------------------------------------------------------------------------

    def paginate(
        self, path: str, params: Mapping[str, Any] | None = None, *, max_pages: int | None = None
    ) -> Iterator[Any]:
        """Yield every item of a list endpoint, following ``results``/``next``; bare lists work too.

        The auth token goes with every request, so a ``next`` link is only ever fetched from the
        configured DataMasque origin: a link naming another origin (DataMasque behind a proxy
        that rewrites the Host header, or a tampered answer) keeps its ``/api/...`` path and
        query and is fetched from the connection's URL instead.
        """
        url: str | None = path
        current: Mapping[str, Any] | None = params
        pages = 0
        while url:
            body = self.request_json("GET", url, params=current)
            pages += 1
            if isinstance(body, list):
                yield from body
                return
            if not isinstance(body, dict) or not isinstance(body.get("results"), list):
                raise DataMasqueApiError(
                    f"DataMasque GET {_path_of(url)} returned neither a list nor a paginated "
                    f"'results' envelope (got {type(body).__name__}).",
                    method="GET",
                    path=_path_of(url),
                )
            yield from body["results"]
            url = body.get("next") or None
            if url is not None and _origin(str(url)) not in (None, _origin(self.config.base_url)):
                url = self._rehome_next(str(url), path)
            current = None  # ``next`` already carries the cursor.
            if max_pages is not None and pages >= max_pages:
                return

    def _rehome_next(self, link: str, path: str) -> str:
        """The ``/api/...`` part of a foreign ``next`` link, to be fetched from our own origin."""
        parts = urlsplit(link.strip())
        start = parts.path.find("/api/")
        if start < 0:
            raise DataMasqueApiError(
                self.scrubber.scrub(
                    f"DataMasque GET {_path_of(path)} returned a 'next' page link on another host "
                    f"({_origin(link)}) with no /api/ path; not following it, as the request would "
                    "carry the DataMasque token there. Check the proxy in front of DataMasque."
                ),
                method="GET",
                path=_path_of(path),
            )
        log.debug("Fetching the next page of %s from %s", _path_of(path), self.config.base_url)
        return parts.path[start:] + (f"?{parts.query}" if parts.query else "")


def _origin(url: str) -> str | None:
    """``scheme://host:port`` of an absolute URL (default port filled in); None for a relative one."""
    parts = urlsplit(url.strip())
    if not parts.scheme and not parts.netloc:
        return None
    scheme = parts.scheme.lower()
    try:
        port = parts.port or {"http": 80, "https": 443}.get(scheme)
    except ValueError:
        port = None
    return f"{scheme}://{(parts.hostname or '').lower()}:{port}"


def _rewind(files: Mapping[str, Any] | None, data: Any = None) -> None:
    """Put upload streams back at the start so a replayed request sends the whole file.

    A streamed body (``MultipartStream``) rewinds itself, and raises when it cannot be replayed.
    """
    rewind = getattr(data, "rewind", None)
    if callable(rewind):
        rewind()
    for value in (files or {}).values():
        stream = value[1] if isinstance(value, tuple) and len(value) > 1 else value
        seek = getattr(stream, "seek", None)
        if callable(seek):
            with contextlib.suppress(OSError, ValueError):
                seek(0)


def _path_of(url: str) -> str:
    return urlsplit(url).path or url


def _exc_summary(exc: BaseException) -> str:
    """One line about a requests exception without its full, noisy urllib3 chain."""
    name = type(exc).__name__
    text = str(exc)
    match = re.search(r"\((?:Caused by )?\w+\(['\"]?(.*?)['\"]?\)\)", text)
    reason = match.group(1) if match else text
    return f"{name}: {reason[:300]}" if reason else name


def dumps_for_log(value: Any) -> str:
    """JSON for a log line, with secrets blanked."""
    return json.dumps(redact_value(value), default=str, sort_keys=True)

"""The native-async (aiohttp) transport, used by the trigger so the triggerer's event loop never blocks.

Only the I/O lives here. Building requests, the retry decisions, the 401 re-login rule and mapping
answers to data or errors come from ``hooks.client`` (``ClientCore``, ``Attempts``), the same code
the sync ``requests`` transport runs; the run-log cursor and parsing come from ``hooks.runs``.

Triggers in one triggerer that use the same Airflow connection share one ``AsyncDataMasqueClient``
(one ``aiohttp.ClientSession`` with its connection pool, and one login token) through
:func:`acquire_client` / :func:`release_client`: a thousand triggers cost one pool, not a thousand.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp

from airflow_provider_datamasque.hooks.client import LOGIN_PATH, USER_AGENT, ClientConfig, ClientCore
from airflow_provider_datamasque.hooks.resource import object_path
from airflow_provider_datamasque.hooks.runs import LogCursor, run_log_from_reply, run_log_request

if TYPE_CHECKING:
    import ssl

T = TypeVar("T")

#: Most sockets one shared session opens to a DataMasque instance; more polls queue for a socket.
POOL_LIMIT = 64


class AsyncReply:
    """A fully read aiohttp answer with the ``Reply`` shape the shared response handling reads."""

    __slots__ = ("content", "headers", "status_code")

    def __init__(self, status_code: int, headers: Mapping[str, str], content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content

    def json(self) -> Any:
        return json.loads(self.content)  # ValueError (as requests raises) when it is not JSON


class AsyncDataMasqueClient(ClientCore):
    """A DataMasque API session over aiohttp, shared by every trigger on one connection and loop."""

    def __init__(self, config: ClientConfig, *, mask_secret: Callable[[str], None] | None = None) -> None:
        self._masked: set[str] = set()
        self._background: set[asyncio.Future[None]] = set()
        super().__init__(config, mask_secret=mask_secret)
        self._session: aiohttp.ClientSession | None = None
        self._ssl: ssl.SSLContext | None = None
        self._proxy: tuple[Any, Any] | None = None  # (proxy URL or None, proxy auth), found once
        self._login_lock = asyncio.Lock()
        self._session_lock = asyncio.Lock()
        self.users = 0

    def _remember_secret(self, *values: str | None) -> None:
        """Scrub at once; register with Airflow's masker off the loop (on Airflow 3 it messages the
        triggerer's supervisor)."""
        self.scrubber.add(*values)
        new = [value for value in values if value and value not in self._masked]
        if self._mask_secret is None or not new:
            return
        self._masked.update(new)
        for value in new:
            task = asyncio.ensure_future(off_loop(self._mask_secret, value))
            self._background.add(task)  # the loop keeps only weak references to tasks
            task.add_done_callback(self._background.discard)

    async def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is not None and not self._session.closed:
            return self._session
        async with self._session_lock:  # users arriving meanwhile wait for this one session
            if self._session is None or self._session.closed:
                self._session = await self._new_session()
        return self._session

    async def _new_session(self) -> aiohttp.ClientSession:
        ssl_setting: ssl.SSLContext | bool = self.config.verify is not False
        if isinstance(self.config.verify, str):
            if self._ssl is None:  # reading a CA bundle is file I/O: keep it off the loop
                self._ssl = await asyncio.to_thread(_ssl_context, self.config.verify)
            ssl_setting = self._ssl
        if self._proxy is None:
            # Once per client, not per request: aiohttp's trust_env looks the proxy up (and reads
            # ~/.netrc) in a worker thread for every request, two thread hops per poll.
            self._proxy = await asyncio.to_thread(_env_proxy, self.config.base_url)
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=POOL_LIMIT, ssl=ssl_setting),
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=self.config.connect_timeout, sock_read=self.config.read_timeout
            ),
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    @property
    def closed(self) -> bool:
        return self._session is not None and self._session.closed

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    # -- auth -------------------------------------------------------------------------------------

    async def login(self, stale: str | None = None) -> str:
        """Log in unless another user of this client already replaced token ``stale``; return the token."""
        async with self._login_lock:
            if self._token is not None and self._token != stale:
                return self._token
            body = self._login_body()
            reply = await self.request(
                "POST", LOGIN_PATH, json_body=body, idempotent=True, authenticated=False, check=False
            )
            self._token = self._token_in(reply)
            self._token_from_login = True
            return self._token

    # -- requests ---------------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        authenticated: bool = True,
        check: bool = True,
    ) -> AsyncReply:
        """Send a request, retrying what is safe to retry; raise a ``DataMasqueError`` on failure
        (``check=False``: return an error answer instead, after the retries)."""
        method = method.upper()
        attempts = self._attempts(method, path, idempotent, authenticated, bodies=(json_body,))
        session = await self._ensure_session()
        proxy, proxy_auth = self._proxy or (None, None)
        while True:
            token = None
            request_headers = headers
            if authenticated:
                token = self._token if self._token is not None else await self.login()
                auth = self._auth_value(token)
                request_headers = {**headers, **auth} if headers else auth
            try:
                async with session.request(
                    method,
                    attempts.url,
                    json=json_body,
                    headers=request_headers,
                    proxy=proxy,
                    proxy_auth=proxy_auth,
                ) as response:
                    reply = AsyncReply(response.status, response.headers, await response.read())
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                await asyncio.sleep(attempts.after_error(exc))
                continue
            if attempts.relogin(reply.status_code):
                await self.login(stale=token)
                continue
            wait = attempts.retry_wait(reply.status_code, reply.headers)
            if wait is not None:
                await asyncio.sleep(wait)
                continue
            if check:
                self._raise_for_status(reply, method, path)
            return reply

    async def request_json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.parse_json(await self.request(method, path, **kwargs), method.upper(), path)

    # -- runs (what a trigger reads) ----------------------------------------------------------------

    async def get_run(self, run_id: int | str) -> dict[str, Any]:
        result: dict[str, Any] = await self.request_json("GET", object_path("runs", run_id))
        return result

    async def get_run_log_since(
        self, run_id: int | str, cursor: LogCursor, *, final: bool = False
    ) -> tuple[list[Any], LogCursor]:
        """Entries added since ``cursor``, and the new cursor (see ``RunsMixin.get_run_log_since``)."""
        path, headers = run_log_request(run_id, cursor)
        reply = await self.request("GET", path, headers=headers, check=False)
        return run_log_from_reply(self, reply, path, cursor, final=final)


def off_loop(func: Callable[..., T], *args: Any) -> Awaitable[T]:
    """Run a sync call that may use Airflow's APIs (a connection read, secret masking) in a thread.

    asgiref's ``sync_to_async``, not ``asyncio.to_thread``: Airflow 3's triggerer answers such calls
    through a channel owned by the event loop, and only asgiref's thread hands them back to that loop
    (from a plain thread they run on a second loop and the triggerer dies with "Response read out of
    order"). It is what Airflow's own triggers use; asgiref ships with Airflow 2 and 3.
    """
    from asgiref.sync import sync_to_async

    return sync_to_async(func)(*args)


def _env_proxy(base_url: str) -> tuple[Any, Any]:
    """(proxy, proxy auth) for DataMasque from HTTP(S)_PROXY / NO_PROXY, as requests reads them.

    All of a client's requests go to its own origin (``paginate`` re-homes foreign links), so one
    answer serves them all.
    """
    from aiohttp.helpers import get_env_proxy_for_url
    from yarl import URL

    try:
        return get_env_proxy_for_url(URL(base_url))
    except LookupError:  # no proxy for this host, or NO_PROXY names it
        return None, None


def _ssl_context(cafile: str) -> ssl.SSLContext:
    import ssl

    return ssl.create_default_context(cafile=cafile)


_shared: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[Any, ...], AsyncDataMasqueClient]
] = weakref.WeakKeyDictionary()


def acquire_client(
    config: ClientConfig, *, mask_secret: Callable[[str], None] | None = None
) -> AsyncDataMasqueClient:
    """The client shared by this event loop's users of ``config``; pair with :func:`release_client`.

    Keyed by the whole configuration (URL, credentials, TLS, timeouts, retries), so a connection
    edited in Airflow gets a fresh client and never a stale login.
    """
    clients = _shared.setdefault(asyncio.get_running_loop(), {})
    key = config.identity
    client = clients.get(key)
    if client is None or client.closed:
        client = clients[key] = AsyncDataMasqueClient(config, mask_secret=mask_secret)
    client.users += 1
    return client


async def release_client(client: AsyncDataMasqueClient) -> None:
    """Leave a shared client; the last user out closes its session."""
    client.users -= 1
    if client.users > 0:
        return
    clients = _shared.get(asyncio.get_running_loop(), {})
    key = client.config.identity
    if clients.get(key) is client:
        del clients[key]
    await client.close()

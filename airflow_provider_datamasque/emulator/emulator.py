"""DataMasqueEmulator: the public, thread-based handle tests and demos code against."""

from __future__ import annotations

import json
import re
import ssl
import threading
import time
from types import TracebackType
from typing import Any
from urllib.parse import quote

from airflow_provider_datamasque.emulator import connections, rulesets, runs
from airflow_provider_datamasque.emulator.faults import FaultConfig, FaultInjector
from airflow_provider_datamasque.emulator.server import EmulatorHTTPServer
from airflow_provider_datamasque.emulator.state import ALL_STATUSES, JournalEntry, Store

DEFAULT_PASSWORD = "Emulator-Passw0rd-1"


class DataMasqueEmulator:
    """An in-process DataMasque API on a real socket, for tests, demos and benchmarks."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        username: str = "admin",
        password: str = DEFAULT_PASSWORD,
        run_seconds: float = 5.0,
        seed: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """``ssl_context`` (a server-side context with a certificate loaded) serves HTTPS."""
        self.host = host
        self.ssl_context = ssl_context
        self._requested_port = port
        self.username = username
        self.password = password
        self.run_seconds = run_seconds
        self.seed = seed
        self.store = Store(username, password)
        self.faults = FaultInjector(FaultConfig(seed=seed))
        self._unavailable_until = 0.0
        self._server: EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle ---------------------------------------------------------------------------

    def start(self) -> DataMasqueEmulator:
        """Bind and serve in a daemon thread; returns self once the socket is listening."""
        if self._server is not None:
            return self
        self._server = EmulatorHTTPServer((self.host, self._requested_port), self, self.ssl_context)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"datamasque-emulator-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and sever open keep-alive connections."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.sever_all()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._last_connections = server.connections_accepted

    def __enter__(self) -> DataMasqueEmulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ---- addressing --------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (the requested one until started)."""
        if self._server is None:
            return self._requested_port
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL without a trailing slash."""
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def api_token(self) -> str:
        """The admin user's long-lived api_token (works as ``Authorization: Token ...``)."""
        return self.store.api_token

    @property
    def connections_accepted(self) -> int:
        """TCP connections accepted so far (keep-alive reuse keeps this low)."""
        if self._server is None:
            return int(getattr(self, "_last_connections", 0))
        return self._server.connections_accepted

    def connection_json(self) -> str:
        """An Airflow connection in JSON form."""
        return json.dumps(
            {"conn_type": "datamasque", "host": self.url, "login": self.username, "password": self.password}
        )

    def connection_uri(self) -> str:
        """An Airflow connection URI (``AIRFLOW_CONN_...`` value)."""
        return (
            f"datamasque://{quote(self.username, safe='')}:{quote(self.password, safe='')}"
            f"@{self.host}:{self.port}/?scheme={'https' if self.ssl_context is not None else 'http'}"
        )

    # ---- faults ------------------------------------------------------------------------------

    def set_faults(self, config: FaultConfig) -> None:
        """Replace the fault configuration (and restart its seeded random stream)."""
        self.faults.configure(config)

    def clear_faults(self) -> None:
        """No more injected faults (the unavailable window is separate)."""
        self.faults.configure(FaultConfig(seed=self.seed))

    def unavailable(self, seconds: float) -> None:
        """Answer 502 (gateway HTML) to everything for ``seconds`` from now: a restart window."""
        self._unavailable_until = time.monotonic() + seconds

    def is_unavailable(self) -> bool:
        """Inside an ``unavailable()`` window?"""
        return time.monotonic() < self._unavailable_until

    # ---- inspection --------------------------------------------------------------------------

    @property
    def journal(self) -> list[JournalEntry]:
        """A snapshot of every request seen (including injected faults)."""
        with self.store.lock:
            return list(self.store.journal)

    @property
    def runs_created(self) -> int:
        """Runs really created by POST /api/runs/ (including ones whose response was dropped)."""
        return self.store.runs_created

    def count_requests(self, method: str | None, path_regex: str) -> int:
        """Journal entries whose method equals ``method`` (None or "*" = any) and whose path
        fully matches ``path_regex``."""
        pattern = re.compile(path_regex)
        return sum(
            1
            for entry in self.journal
            if (method in (None, "*") or entry.method == method.upper()) and pattern.fullmatch(entry.path)
        )

    # ---- seeding and test hooks --------------------------------------------------------------

    def create_connection(self, **fields: Any) -> dict[str, Any]:
        """Create a connection with the API's validation (raises ApiError on bad fields)."""
        return connections.create_connection(self.store, fields)

    def create_ruleset(self, name: str, config_yaml: str, mask_type: str = "database") -> dict[str, Any]:
        """Create a ruleset with the API's validation (raises ApiError on duplicates/bad fields)."""
        _status, body = rulesets.create_ruleset(
            self.store, {"name": name, "config_yaml": config_yaml, "mask_type": mask_type}
        )
        return body

    def get_run(self, run_id: int) -> dict[str, Any]:
        """The run object as GET /api/runs/{id}/ would return it now (KeyError if unknown)."""
        with self.store.lock:
            return self.store.runs[run_id].view()

    def set_run_status(self, run_id: int, status: str) -> None:
        """Force a status now, e.g. ``"cancelled"`` as if someone else cancelled the run."""
        if status not in ALL_STATUSES:
            raise ValueError(f"Unknown run status {status!r}")
        runs.force_status(self.store, run_id, status, self.run_seconds)

    def reset(self) -> None:
        """Drop all objects, runs, journal and faults; keep the admin user and its tokens."""
        self.store.clear_objects()
        self.clear_faults()
        self._unavailable_until = 0.0

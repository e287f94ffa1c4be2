"""HTTP/1.1 keep-alive server: parse, inject faults, authenticate, route, write, journal.

Every response carries a Content-Length and is written with a single ``sendall`` (streams: the
head, then 64 KiB chunks), and Nagle is off, so one client connection can carry thousands of
requests without delayed-ACK stalls.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import sys
import threading
import time
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_provider_datamasque.emulator import api, runs_api
from airflow_provider_datamasque.emulator.messages import Context, Response, gateway_502, json_response
from airflow_provider_datamasque.emulator.routes import resolve
from airflow_provider_datamasque.emulator.state import ApiError, JournalEntry

if TYPE_CHECKING:
    from airflow_provider_datamasque.emulator.emulator import DataMasqueEmulator

_ENDPOINT_MODULES = (api, runs_api)  # importing them registers their routes
_REASONS = {s.value: s.phrase for s in HTTPStatus}
_FAULT_BODIES = {
    500: {"detail": "A server error occurred."},
    503: {"detail": "Service temporarily unavailable, try again later."},
}


class EmulatorHTTPServer(ThreadingHTTPServer):
    """Threading server that counts accepted connections and can sever them all on stop."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        emulator: DataMasqueEmulator,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.emulator = emulator
        self.connections_accepted = 0
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, EmulatorRequestHandler)
        if ssl_context is not None:
            # HTTPS: the handshake runs on the first read, in the connection's own thread.
            self.socket = ssl_context.wrap_socket(
                self.socket, server_side=True, do_handshake_on_connect=False
            )

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that refused our TLS certificate is expected (TLS tests), not a server bug."""
        if isinstance(sys.exc_info()[1], ssl.SSLError):
            return
        super().handle_error(request, client_address)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self.connections_accepted += 1
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def sever_all(self) -> None:
        """Close every open client connection (used by stop())."""
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class EmulatorRequestHandler(BaseHTTPRequestHandler):
    """One instance per connection; ``handle_one_request`` loops while the client keeps it alive."""

    protocol_version = "HTTP/1.1"
    server_version = "DataMasqueEmulator/1.0"
    disable_nagle_algorithm = True
    server: EmulatorHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request logging: it costs CPU and floods test output."""

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _handle(self) -> None:
        emu = self.server.emulator
        method = self.command
        split = urlsplit(self.path)
        path = split.path if split.path.endswith("/") else split.path + "/"
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return
        response = self._respond(emu, method, path, split.query, body)
        if response.drop:
            self.close_connection = True
            emu.store.record(
                JournalEntry(method, path, split.query, response.status, time.time(), True, response.fault)
            )
            return
        emu.store.record(
            JournalEntry(method, path, split.query, response.status, time.time(), False, response.fault)
        )
        self._write(response)

    def _respond(self, emu: DataMasqueEmulator, method: str, path: str, query: str, body: bytes) -> Response:
        if emu.is_unavailable():
            response = gateway_502()
            response.fault = "unavailable"
            return response
        faults = emu.faults
        delay = faults.latency_for(method, path)
        if delay:
            time.sleep(delay)
        decision = faults.decide(method, path)
        if decision is not None:
            return self._fault_response(decision.kind, decision.status, faults.config.retry_after)
        try:
            found, groups, path_exists = resolve(method, path)
            if found is None:
                if path_exists:
                    return json_response(405, {"detail": f'Method "{method}" not allowed.'})
                return json_response(404, {"detail": "Not found."})
            if found.auth:
                self._authenticate(emu)
            ctx = Context(emu, method, path, query, self.headers, body)
            return found.endpoint(ctx, *groups)
        except ApiError as exc:
            return json_response(exc.status, exc.body)
        except Exception:
            traceback.print_exc(file=sys.stderr)
            return json_response(500, {"detail": "A server error occurred."})

    def _authenticate(self, emu: DataMasqueEmulator) -> None:
        scheme, _, key = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "token" or not key.strip():
            raise ApiError(401, {"detail": "Authentication credentials were not provided."})
        if not emu.store.authenticate(key.strip(), emu.faults.config.token_expiry_after):
            raise ApiError(401, {"detail": "Invalid token."})

    @staticmethod
    def _fault_response(kind: str, status: int, retry_after: float) -> Response:
        if kind == "drop":
            return Response(0, drop=True, fault="drop")
        if kind == "rate_limit":
            wait = f"{retry_after:g}"
            detail = f"Request was throttled. Expected available in {wait} seconds."
            return json_response(429, {"detail": detail}, headers=[("Retry-After", wait)], fault="rate_limit")
        if status == 502:
            response = gateway_502()
        else:
            response = json_response(status, _FAULT_BODIES.get(status, {"detail": f"Error {status}."}))
        response.fault = f"error_{status}"
        return response

    def _write(self, response: Response) -> None:
        length = response.length if response.stream is not None else len(response.body)
        lines = [f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Unknown')}"]
        if response.content_type:
            lines.append(f"Content-Type: {response.content_type}")
        lines.append(f"Content-Length: {length}")
        lines.extend(f"{name}: {value}" for name, value in response.headers)
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        try:
            if response.stream is None:
                self.wfile.write(head + response.body)
                return
            self.wfile.write(head)
            for chunk in response.stream:
                self.wfile.write(chunk)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

"""A scripted HTTP server for trigger unit tests: each path answers from a list, in order.

The trigger talks aiohttp, which requests-mock cannot intercept, so these tests script real HTTP
answers instead: a list of responses per ``(method, path)`` is served in order, the last one
repeating (as requests-mock does). Besides status/json/text/content/headers a response may be
``{"drop": True}`` (the connection is closed with no answer) or ``{"delay": seconds}`` (answer late,
past the client's read timeout).
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


class ScriptedApi:
    """Serves scripted answers on 127.0.0.1; ``request_history`` and ``call_count`` as requests-mock has."""

    def __init__(self) -> None:
        self._routes: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self.request_history: list[Seen] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                path = self.path.split("?", 1)[0]
                response = api._next(self.command, path, dict(self.headers))
                if response.get("drop"):
                    # RST instead of FIN: the client sees "connection reset", no answer.
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    return
                if response.get("delay"):
                    time.sleep(response["delay"])
                status = int(response.get("status_code", 200))
                headers = dict(response.get("headers") or {})
                if "json" in response:
                    body = json.dumps(response["json"]).encode()
                    headers.setdefault("Content-Type", "application/json")
                elif "text" in response:
                    body = response["text"].encode()
                    headers.setdefault(
                        "Content-Type", "text/html" if "<html" in response["text"] else "text/plain"
                    )
                else:
                    body = response.get("content", b"")
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def get(self, path: str, responses: list[dict[str, Any]] | None = None, **response: Any) -> None:
        self.add("GET", path, responses or [response])

    def post(self, path: str, responses: list[dict[str, Any]] | None = None, **response: Any) -> None:
        self.add("POST", path, responses or [response])

    def add(self, method: str, path: str, responses: list[dict[str, Any]]) -> None:
        with self._lock:
            self._routes[(method, path)] = list(responses)

    def _next(self, method: str, path: str, headers: dict[str, str]) -> dict[str, Any]:
        with self._lock:
            self.request_history.append(Seen(method, path, headers))
            queue = self._routes.get((method, path))
            if not queue:
                return {"status_code": 404, "json": {"detail": "Not found (not scripted)."}}
            return queue.pop(0) if len(queue) > 1 else queue[0]

    @property
    def call_count(self) -> int:
        return len(self.request_history)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

"""Request context and response objects shared by the server and the endpoint functions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, parse_qsl

from airflow_provider_datamasque.emulator.multipart import UploadedFile, parse_multipart
from airflow_provider_datamasque.emulator.state import ApiError

if TYPE_CHECKING:
    from airflow_provider_datamasque.emulator.emulator import DataMasqueEmulator

GATEWAY_HTML = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


@dataclass
class Response:
    """An answer: a body in memory, or a stream of chunks of known total ``length``."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)
    stream: Iterator[bytes] | None = None
    length: int | None = None
    drop: bool = False
    fault: str | None = None


def json_response(status: int, payload: Any, **extra: Any) -> Response:
    """Serialise ``payload`` as the body."""
    return Response(status, json.dumps(payload).encode(), **extra)


def empty(status: int = 204) -> Response:
    """No body (Content-Length: 0)."""
    return Response(status, b"", content_type="")


def gateway_502() -> Response:
    """What a reverse proxy says while the app behind it is down."""
    return Response(502, GATEWAY_HTML, content_type="text/html")


@dataclass
class Context:
    """One parsed request, handed to an endpoint function."""

    emu: DataMasqueEmulator
    method: str
    path: str
    raw_query: str
    headers: Message
    body: bytes

    @property
    def query(self) -> dict[str, str]:
        """Query parameters (last value wins), blanks kept: ``ruleset_name=`` means "any"."""
        return {k: v[-1] for k, v in parse_qs(self.raw_query, keep_blank_values=True).items()}

    @property
    def content_type(self) -> str:
        """Lower-cased media type without parameters."""
        return (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()

    def json(self) -> Any:
        """The body as JSON (form-encoded bodies are accepted too, as some clients send them)."""
        if self.content_type == "application/x-www-form-urlencoded":
            return dict(parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True))
        if self.content_type == "multipart/form-data":
            return self.form()[0]
        if not self.body.strip():
            return {}
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, {"detail": f"JSON parse error - {exc}"}) from exc

    def form(self) -> tuple[dict[str, Any], dict[str, UploadedFile]]:
        """(fields, files) from multipart, or (JSON object, {}) for JSON bodies."""
        if self.content_type == "multipart/form-data":
            return parse_multipart(self.body, self.headers.get("Content-Type", ""))
        data = self.json()
        if not isinstance(data, dict):
            raise ApiError(400, {"non_field_errors": ["Invalid data. Expected a dictionary."]})
        return data, {}

    def base_url(self) -> str:
        """Absolute URL prefix as the client addressed us (for pagination ``next`` links)."""
        host = self.headers.get("Host")
        return f"http://{host}" if host else self.emu.url

"""A small linear-time multipart/form-data parser (the ``cgi`` module is gone in Python 3.13).

It scans the body with ``bytes.find`` and slices each part once, so multi-MB uploads cost one
pass and one copy per part.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from airflow_provider_datamasque.emulator.state import ApiError

_PARAM_RE = re.compile(r';\s*([A-Za-z0-9_*-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]*))')


@dataclass
class UploadedFile:
    """One file part."""

    filename: str
    content_type: str
    data: bytes


def header_params(value: str) -> dict[str, str]:
    """Parameters of a header such as ``form-data; name="x"; filename="y"``."""
    return {
        m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
        for m in _PARAM_RE.finditer(value)
    }


def parse_multipart(body: bytes, content_type: str) -> tuple[dict[str, str], dict[str, UploadedFile]]:
    """Split a multipart body into (form fields, files)."""
    boundary = header_params(content_type).get("boundary")
    if not boundary:
        raise ApiError(400, {"detail": "Multipart form parse error - Invalid boundary in multipart: None"})
    delimiter = b"--" + boundary.encode("latin-1")
    fields: dict[str, str] = {}
    files: dict[str, UploadedFile] = {}
    pos = body.find(delimiter)
    if pos < 0:
        raise ApiError(400, {"detail": "Multipart form parse error - boundary not found"})
    while True:
        pos += len(delimiter)
        if body[pos : pos + 2] == b"--":
            break
        line_end = body.find(b"\r\n", pos)
        header_end = body.find(b"\r\n\r\n", line_end)
        if line_end < 0 or header_end < 0:
            raise ApiError(400, {"detail": "Multipart form parse error - truncated part headers"})
        headers: dict[str, str] = {}
        for raw in body[line_end + 2 : header_end].decode("utf-8", "replace").split("\r\n"):
            key, _, value = raw.partition(":")
            headers[key.strip().lower()] = value.strip()
        start = header_end + 4
        end = body.find(b"\r\n" + delimiter, start)
        if end < 0:
            raise ApiError(400, {"detail": "Multipart form parse error - missing closing boundary"})
        params = header_params(headers.get("content-disposition", ""))
        name = params.get("name", "")
        if "filename" in params:
            files[name] = UploadedFile(params["filename"], headers.get("content-type", ""), body[start:end])
        else:
            fields[name] = body[start:end].decode("utf-8", "replace")
        pos = end + 2
    return fields, files

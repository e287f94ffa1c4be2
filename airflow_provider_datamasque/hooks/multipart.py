"""A streaming multipart/form-data body: form fields plus one file part read in chunks.

requests' ``files=`` builds the whole multipart body in memory before sending it, so a 1 GB seed
would cost 1 GB of worker memory. ``MultipartStream`` is an iterable that requests sends as it is
read: the small head and tail are built up front, the file is read ``chunk_size`` bytes at a time.
When the file's size is known (anything seekable) the body length is too, and requests sends a
Content-Length; otherwise it falls back to ``Transfer-Encoding: chunked``.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator, Mapping
from typing import BinaryIO

from airflow_provider_datamasque.hooks.errors import DataMasqueError

#: Bytes read from the source per chunk: big enough that per-chunk Python overhead is negligible.
DEFAULT_CHUNK_SIZE = 1 << 20

# HTML5 form encoding of a header parameter value (what browsers and urllib3 send).
_PARAM_ESCAPES = {ord('"'): "%22", ord("\\"): "\\\\", ord("\r"): "%0D", ord("\n"): "%0A"}


def _disposition(name: str, filename: str | None = None) -> str:
    value = f'form-data; name="{name.translate(_PARAM_ESCAPES)}"'
    if filename is not None:
        value += f'; filename="{filename.translate(_PARAM_ESCAPES)}"'
    return value


def remaining_size(fileobj: BinaryIO) -> int | None:
    """Bytes left to read in ``fileobj``, or None when it cannot tell (not seekable)."""
    try:
        if not fileobj.seekable():
            return None
        position = fileobj.tell()
        end = fileobj.seek(0, io.SEEK_END)
        fileobj.seek(position)
    except (AttributeError, OSError, ValueError):
        return None
    return max(0, end - position)


class MultipartStream:
    """A multipart/form-data request body that reads its file part lazily.

    Pass it as ``data=`` with ``headers={"Content-Type": stream.content_type}``. Iterating it
    yields the encoded body; iterating again (a request replayed after a 429 or a re-login)
    starts over, which needs the source to be seekable: ``rewind()`` says so clearly when not.
    """

    def __init__(
        self,
        fields: Mapping[str, str],
        file_field: str,
        fileobj: BinaryIO,
        *,
        filename: str,
        content_type: str = "application/octet-stream",
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        boundary: str | None = None,
    ) -> None:
        self.boundary = boundary or uuid.uuid4().hex
        self.content_type = f"multipart/form-data; boundary={self.boundary}"
        self._fileobj = fileobj
        self._chunk_size = chunk_size
        self._file_field = file_field
        parts = []
        for name, value in fields.items():
            parts.append(
                f"--{self.boundary}\r\nContent-Disposition: {_disposition(name)}\r\n\r\n".encode()
                + value.encode("utf-8")
                + b"\r\n"
            )
        parts.append(
            f"--{self.boundary}\r\nContent-Disposition: {_disposition(file_field, filename)}\r\n"
            f"Content-Type: {content_type}\r\n\r\n".encode()
        )
        self._head = b"".join(parts)
        self._tail = f"\r\n--{self.boundary}--\r\n".encode()
        self._start: int | None = None
        try:
            self._start = fileobj.tell() if fileobj.seekable() else None
        except (AttributeError, OSError, ValueError):
            self._start = None
        self._started = False
        size = self._size = remaining_size(fileobj)
        if size is not None:
            # requests reads ``len`` for the Content-Length; left unset, it sends the body chunked.
            self.len = len(self._head) + size + len(self._tail)

    def rewind(self) -> None:
        """Make the next iteration send the whole body again, or refuse clearly if it cannot."""
        if not self._started:
            return
        if self._start is None:
            raise DataMasqueError(
                f"The upload of {self._file_field!r} cannot be sent again: its source is not seekable "
                "and part of it was already sent. Retry the task to upload it afresh."
            )
        self._fileobj.seek(self._start)
        self._started = False

    def __iter__(self) -> Iterator[bytes]:
        if self._started:
            self.rewind()
        self._started = True
        yield self._head
        read = self._fileobj.read
        chunk_size = self._chunk_size
        left = self._size
        while left is None or left > 0:
            chunk = read(chunk_size if left is None else min(chunk_size, left))
            if not chunk:
                if left:
                    # The Content-Length promised more: sending less would leave the server waiting.
                    raise DataMasqueError(
                        f"The source of {self._file_field!r} ended {left} bytes early while uploading; "
                        "was it changed during the upload?"
                    )
                break
            if left is not None:
                left -= len(chunk)
            yield chunk
        yield self._tail

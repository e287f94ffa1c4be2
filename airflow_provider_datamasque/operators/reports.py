"""Fetch a run's sensitive-data-discovery (SDD) report into XCom or onto storage."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import unquote, urlsplit

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_datamasque.hooks.errors import (
    DataMasqueConfigError,
    DataMasqueNotFoundError,
    DataMasqueTransportError,
)
from airflow_provider_datamasque.operators._storage import conn_id_of

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context, ObjectStoragePath

    from airflow_provider_datamasque.hooks.datamasque import DataMasqueHook

IF_MISSING = ("fail", "skip")
_LOCAL_PROTOCOLS = ("", "file", "local")


def local_path_of(destination: object) -> str | None:
    """The local file path a destination names, or None when it is remote storage."""
    protocol = getattr(destination, "protocol", None)
    if protocol is not None:  # an ObjectStoragePath
        if protocol in _LOCAL_PROTOCOLS and conn_id_of(destination) is None:
            return str(destination.path)  # type: ignore[attr-defined]
        return None
    text = os.fspath(destination) if isinstance(destination, os.PathLike) else str(destination)
    if "://" not in text:
        return os.path.abspath(os.path.expanduser(text))
    parts = urlsplit(text)
    if parts.scheme in ("file", "local") and parts.netloc in ("", "localhost"):
        return unquote(parts.path)
    return None


class DataMasqueSddReportOperator(BaseOperator):
    """Fetch the SDD report CSV of a finished DataMasque run.

    Small reports go to XCom for a downstream task to inspect; large ones (they can reach
    gigabytes) are streamed chunk by chunk to ``destination`` so the worker's memory stays flat.
    Local files are written to a temporary file and renamed, so readers never see half a report.

    :param run_id: DataMasque run id (templated).
    :param destination: Where to write the CSV (templated): a local path, ``file:///...``,
        ``s3://bucket/key.csv``, ``memory://...`` or an ``ObjectStoragePath``. Without it the CSV
        text is returned (to XCom), up to ``max_xcom_bytes``.
    :param destination_conn_id: Airflow connection for the destination storage, passed as
        ``ObjectStoragePath(destination, conn_id=destination_conn_id)``.
    :param if_missing: The run has no SDD report (HTTP 404): ``"fail"`` the task, or ``"skip"`` it.
    :param max_xcom_bytes: Largest report returned to XCom; larger ones fail and ask for
        ``destination``.
    :param chunk_size: Bytes read from DataMasque and written per chunk.
    :param datamasque_conn_id: Airflow connection id of type ``datamasque``.
    :return: The CSV text (no destination) or the destination's URI/path string.
    """

    template_fields: Sequence[str] = ("run_id", "destination")
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        run_id: int | str,
        destination: str | os.PathLike[str] | ObjectStoragePath | None = None,
        destination_conn_id: str | None = None,
        if_missing: str = "fail",
        max_xcom_bytes: int = 1048576,
        chunk_size: int = 1048576,
        datamasque_conn_id: str = "datamasque_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if if_missing not in IF_MISSING:
            raise DataMasqueConfigError(
                f"{type(self).__name__}: if_missing must be 'fail' or 'skip'; got {if_missing!r}."
            )
        if max_xcom_bytes < 0:
            raise DataMasqueConfigError(
                f"{type(self).__name__}: max_xcom_bytes must be >= 0, got {max_xcom_bytes!r}."
            )
        if chunk_size <= 0:
            raise DataMasqueConfigError(f"{type(self).__name__}: chunk_size must be > 0, got {chunk_size!r}.")
        self.run_id = run_id
        self.destination = destination
        self.destination_conn_id = destination_conn_id
        self.if_missing = if_missing
        self.max_xcom_bytes = max_xcom_bytes
        self.chunk_size = chunk_size
        self.datamasque_conn_id = datamasque_conn_id

    @cached_property
    def hook(self) -> DataMasqueHook:
        from airflow_provider_datamasque.hooks.datamasque import DataMasqueHook

        return DataMasqueHook(datamasque_conn_id=self.datamasque_conn_id)

    def execute(self, context: Context) -> str:
        run_id = str(self.run_id).strip() if self.run_id is not None else ""
        if not run_id or run_id == "None":
            raise DataMasqueConfigError(f"{type(self).__name__}: run_id is empty.")
        has_destination = self.destination is not None and str(self.destination).strip() != ""
        try:
            with self.hook.open_sdd_report(run_id) as response:
                if not has_destination:
                    return self._to_xcom(run_id, response)
                return self._to_destination(run_id, response)
        except DataMasqueNotFoundError as exc:
            message = (
                f"DataMasque run {run_id} has no SDD report: its ruleset has no run_data_discovery "
                f"task, or the run has not finished yet (or does not exist). Server said: {exc.detail or exc}"
            )
            if self.if_missing == "skip":
                from airflow.providers.common.compat.sdk import AirflowSkipException

                raise AirflowSkipException(message) from None
            raise DataMasqueNotFoundError(
                message, status=exc.status, method=exc.method, path=exc.path, detail=exc.detail
            ) from None

    def _chunks(
        self, run_id: str, response: Any, size: int, *, reuse_buffer: bool = False
    ) -> Iterator[bytes | memoryview]:
        """The body in ``size``-byte blocks; a dropped download is a DataMasque error, not a storage one.

        Reads ``response.raw`` directly: ``iter_content`` adds a generator layer and, for a body
        that is not compressed, a decode step that only copies. Content is decoded only when the
        server sent a Content-Encoding, so what lands on storage is the CSV either way.

        With ``reuse_buffer`` an uncompressed body is read from the socket straight into one
        buffer, and each block is a view of it that is valid until the next block: a fresh 1 MiB
        object per block costs the kernel more (page faults) than copying the data does.
        """
        import http.client

        import requests
        import urllib3

        encoding = (response.headers.get("Content-Encoding") or "").strip().lower()
        decode = encoding not in ("", "identity")
        readinto = None if decode or not reuse_buffer else _socket_readinto(response)
        try:
            if readinto is not None:
                yield from _blocks_into(readinto, size, _content_length(response))
                return
            read = response.raw.read
            while True:
                chunk = read(size, decode_content=decode)
                if not chunk:
                    return
                yield chunk
        except (
            urllib3.exceptions.HTTPError,
            requests.RequestException,
            http.client.HTTPException,  # a cut chunked body, read through http.client
            OSError,
            _Truncated,
        ) as exc:
            raise DataMasqueTransportError(
                f"Lost the connection to DataMasque while downloading the SDD report of run {run_id}: "
                f"{type(exc).__name__}"
            ) from None

    def _to_xcom(self, run_id: str, response: Any) -> str:
        limit = self.max_xcom_bytes
        buffer = bytearray()
        for chunk in self._chunks(run_id, response, min(self.chunk_size, limit + 1)):
            buffer += chunk
            if len(buffer) > limit:
                raise DataMasqueConfigError(
                    f"The SDD report of DataMasque run {run_id} is larger than max_xcom_bytes "
                    f"({limit} bytes), too big for XCom. Set destination (for example "
                    "'s3://bucket/reports/{{ run_id }}.csv' or a local path) to write it to storage, "
                    "or raise max_xcom_bytes."
                )
        self.log.info("Read the SDD report of run %s: %d bytes", run_id, len(buffer))
        return bytes(buffer).decode(response.encoding or "utf-8", errors="replace")

    def _to_destination(self, run_id: str, response: Any) -> str:
        destination = self.destination
        local = local_path_of(destination) if self.destination_conn_id is None else None
        if local is not None:
            # Our own file writer consumes each block before the next: it can take buffer views.
            chunks = self._chunks(run_id, response, self.chunk_size, reuse_buffer=True)
            written = self._write_local(local, chunks)
            uri = str(destination) if "://" in str(destination) else local
        else:
            written, uri = self._write_storage(self._chunks(run_id, response, self.chunk_size))
        self.log.info("Wrote the SDD report of run %s to %s: %d bytes", run_id, uri, written)
        return uri

    def _write_local(self, path: str, chunks: Iterable[bytes | memoryview]) -> int:
        """Temp file in the same directory, then an atomic rename: all or nothing."""
        import tempfile

        directory = os.path.dirname(path) or "."
        try:
            os.makedirs(directory, exist_ok=True)
            handle, temp_path = tempfile.mkstemp(
                dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".part"
            )
        except OSError as exc:
            raise DataMasqueConfigError(
                f"SDD report destination {str(self.destination)!r} is not writable: {exc.strerror or exc}."
            ) from None
        written = 0
        try:
            with os.fdopen(handle, "wb") as out:
                for chunk in chunks:
                    if chunk:
                        out.write(chunk)
                        written += len(chunk)
            os.replace(temp_path, path)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.unlink(temp_path)
            if isinstance(exc, OSError):
                raise DataMasqueConfigError(
                    f"Could not write the SDD report to {str(self.destination)!r}: {exc.strerror or exc}."
                ) from None
            raise
        return written

    def _write_storage(self, chunks: Iterable[bytes | memoryview]) -> tuple[int, str]:
        """Write through ObjectStoragePath (or fsspec for schemes no provider registers)."""
        from airflow.providers.common.compat.sdk import ObjectStoragePath

        destination = self.destination
        if isinstance(destination, ObjectStoragePath) and (
            self.destination_conn_id is None or conn_id_of(destination) == self.destination_conn_id
        ):
            path = destination
        else:
            try:
                path = ObjectStoragePath(str(destination), conn_id=self.destination_conn_id)
            except (ValueError, TypeError) as exc:
                raise DataMasqueConfigError(
                    f"SDD report destination {str(destination)!r} is not a usable path or URI: {exc}"
                ) from None
        # The URI as the DAG gave it: Airflow 2.11 prints some paths differently (memory:///x).
        uri = destination if isinstance(destination, str) else str(path)
        opener, remover = self._storage_io(path, uri)
        written = 0
        try:
            out: BinaryIO = opener()
        except Exception as exc:
            raise DataMasqueConfigError(
                f"SDD report destination {uri!r} is not writable: {type(exc).__name__}: {exc}"
            ) from None
        try:
            with out:
                for chunk in chunks:
                    if chunk:
                        out.write(chunk)
                        written += len(chunk)
        except BaseException as exc:
            with contextlib.suppress(Exception):
                remover()
            if isinstance(exc, OSError):
                raise DataMasqueConfigError(
                    f"Could not write the SDD report to {uri!r}: {type(exc).__name__}: {exc}"
                ) from None
            raise
        return written, uri

    def _storage_io(self, path: ObjectStoragePath, uri: str) -> tuple[Any, Any]:
        """(open for writing, remove) callables for ``path``."""
        try:
            path.fs  # noqa: B018 - raises ValueError when no Airflow provider serves the scheme
        except ValueError:
            if self.destination_conn_id is not None:
                raise DataMasqueConfigError(
                    f"SDD report destination {uri!r}: no Airflow filesystem is registered for "
                    f"{path.protocol!r}; install the provider that serves it."
                ) from None
            # Plain fsspec (memory://, or a scheme whose fsspec package is installed).
            import fsspec

            try:
                fs, fs_path = fsspec.core.url_to_fs(uri)
            except (ImportError, ValueError) as exc:
                raise DataMasqueConfigError(
                    f"SDD report destination {uri!r}: unsupported storage ({exc})."
                ) from None
            return (lambda: fs.open(fs_path, "wb")), (lambda: fs.rm(fs_path))
        return (lambda: path.open("wb")), (lambda: path.unlink(missing_ok=True))


class _Truncated(Exception):
    """The body ended before its Content-Length."""


def _socket_readinto(response: Any) -> Any:
    """``readinto`` of the ``http.client`` response under requests/urllib3, or None.

    urllib3's own ``readinto`` reads into a new object and copies; the ``http.client`` response it
    wraps (``raw._fp``, there in urllib3 1.x and 2.x) reads from the socket into the caller's
    buffer. Used only before anything was read through urllib3, and never for an encoded body.
    """
    import http.client

    fp = getattr(response.raw, "_fp", None)
    if not isinstance(fp, http.client.HTTPResponse) or getattr(response.raw, "_fp_bytes_read", None):
        return None
    return fp.readinto


def _content_length(response: Any) -> int | None:
    try:
        length = int(response.headers.get("Content-Length", ""))
    except ValueError:
        return None
    return length if length >= 0 else None


def _blocks_into(readinto: Any, size: int, expected: int | None) -> Iterator[memoryview]:
    """Views of one reused buffer, filled by ``readinto``; checks the length, as urllib3 would."""
    view = memoryview(bytearray(size))
    total = 0
    while True:
        count = readinto(view)
        if not count:
            break
        total += count
        yield view[:count]
    if expected is not None and total != expected:
        # http.client's readinto returns 0 at a premature end of a Content-Length body.
        raise _Truncated(f"got {total} of {expected} bytes")

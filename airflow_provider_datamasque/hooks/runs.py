"""Masking runs: status, start (never twice), cancel, run logs and reports."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from airflow_provider_datamasque.hooks.errors import (
    DataMasqueApiError,
    DataMasqueConfigError,
    DataMasqueConflictError,
    DataMasqueError,
    DataMasqueNotFoundError,
    DataMasqueTransportError,
)
from airflow_provider_datamasque.hooks.resource import ResourceMixin, object_path

if TYPE_CHECKING:
    import requests

    from airflow_provider_datamasque.hooks.client import ClientCore, Reply

log = logging.getLogger(__name__)

RUNS_PATH = "/api/runs/"


class RunStatus(str, Enum):
    """A masking run's status, as DataMasque reports it."""

    QUEUED = "queued"
    VALIDATING = "validating"
    RUNNING = "running"
    FINISHED = "finished"
    FINISHED_WITH_WARNINGS = "finished_with_warnings"
    FAILED = "failed"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"

    @classmethod
    def parse(cls, value: object) -> RunStatus | None:
        """The status for ``value``, or None for anything DataMasque might add later."""
        if isinstance(value, cls):  # str() of a member is 'RunStatus.X' on Python 3.11+
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            return None

    @classmethod
    def is_terminal(cls, value: object) -> bool:
        return cls.parse(value) in TERMINAL_STATUSES

    @classmethod
    def is_success(cls, value: object) -> bool:
        """Only known success states count: an unknown status is never success."""
        return cls.parse(value) in SUCCESS_STATUSES


ACTIVE_STATUSES = frozenset({RunStatus.QUEUED, RunStatus.VALIDATING, RunStatus.RUNNING, RunStatus.CANCELLING})
TERMINAL_STATUSES = frozenset(
    {RunStatus.FINISHED, RunStatus.FINISHED_WITH_WARNINGS, RunStatus.FAILED, RunStatus.CANCELLED}
)
SUCCESS_STATUSES = frozenset({RunStatus.FINISHED, RunStatus.FINISHED_WITH_WARNINGS})
FAILURE_STATUSES = frozenset({RunStatus.FAILED, RunStatus.CANCELLED})

#: Run options the start endpoint accepts, with their types (PY ``MaskingRunRequest``).
RUN_OPTION_TYPES: dict[str, type | tuple[type, ...]] = {
    "dry_run": bool,
    "batch_size": int,
    "max_rows": int,
    "continue_on_failure": bool,
    "run_secret": str,
    "disable_instance_secret": bool,
    "diagnostic_logging": bool,
    "auto_pull": bool,
    "auto_pull_branch": str,
    "buffer_size": int,
}
RUN_SECRET_MIN, RUN_SECRET_MAX = 20, 256

LOG_LEVEL_NAMES = {10: "DEBUG", 20: "INFO", 30: "WARNING", 40: "ERROR", 50: "CRITICAL"}


def validate_run_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check run options locally so a typo fails before any request, naming the option."""
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise DataMasqueConfigError(f"Run 'options' must be a dict, got {type(options).__name__}.")
    clean: dict[str, Any] = {}
    for key, value in options.items():
        expected = RUN_OPTION_TYPES.get(key)
        if expected is None:
            allowed = ", ".join(sorted(RUN_OPTION_TYPES))
            raise DataMasqueConfigError(f"Unknown run option {key!r}. Allowed options: {allowed}.")
        if value is None:
            continue
        if expected is int:
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise DataMasqueConfigError(f"Run option {key!r} must be a positive integer, got {value!r}.")
            try:
                number = int(value)
            except ValueError:
                raise DataMasqueConfigError(
                    f"Run option {key!r} must be a positive integer, got {value!r}."
                ) from None
            if number <= 0:
                raise DataMasqueConfigError(f"Run option {key!r} must be a positive integer, got {value!r}.")
            value = number
        elif expected is bool and not isinstance(value, bool):
            raise DataMasqueConfigError(f"Run option {key!r} must be true or false, got {value!r}.")
        elif expected is str and not isinstance(value, str):
            raise DataMasqueConfigError(f"Run option {key!r} must be a string.")
        if key == "run_secret" and not RUN_SECRET_MIN <= len(value) <= RUN_SECRET_MAX:
            # Never echo the secret itself, only its length.
            raise DataMasqueConfigError(
                f"Run option 'run_secret' must be {RUN_SECRET_MIN} to {RUN_SECRET_MAX} characters long "
                f"(got {len(value)}). Use a longer secret, or leave it out and DataMasque generates one."
            )
        clean[key] = value
    return clean


def run_summary(run: Mapping[str, Any]) -> dict[str, Any]:
    """The fields worth showing about a run, without its options (which may hold a secret)."""
    keys = ("id", "name", "status", "mask_type", "ruleset_name", "created_time", "start_time", "end_time")
    summary = {k: run.get(k) for k in keys if run.get(k) is not None}
    summary["connection_name"] = run.get("source_connection_name") or run.get("connection_name")
    return summary


@dataclass(frozen=True, slots=True)
class LogCursor:
    """Where the reader of a run log got to: entries seen, and the byte offset after the last one.

    The byte offset lets the next read ask only for the new tail (``Range``) and parse only new
    entries; ``count`` is the fallback when a server ignores ``Range`` or reformats the log.
    """

    count: int = 0
    offset: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_value(cls, value: object) -> LogCursor:
        if isinstance(value, LogCursor):
            return value
        if isinstance(value, Mapping):
            try:
                return cls(int(value.get("count", 0)), int(value.get("offset", 0)))
            except (TypeError, ValueError):
                return cls()
        if isinstance(value, int) and not isinstance(value, bool):
            return cls(count=value)
        return cls()


def format_log_entry(entry: Mapping[str, Any] | str) -> tuple[int, str]:
    """``(logging level, text)`` for one DataMasque run-log entry, keeping its own timestamp."""
    if not isinstance(entry, Mapping):
        return logging.INFO, str(entry)
    raw_level = entry.get("log_level", entry.get("level", 20))
    if isinstance(raw_level, str) and not raw_level.isdigit():
        level = logging.getLevelName(raw_level.upper())
        level = level if isinstance(level, int) else logging.INFO
    else:
        try:
            level = int(raw_level)
        except (TypeError, ValueError):
            level = logging.INFO
    name = LOG_LEVEL_NAMES.get(level, logging.getLevelName(level))
    stamp = entry.get("timestamp", "")
    return level, f"[DataMasque {stamp}] {name}: {entry.get('message', '')}"


_DECODER = json.JSONDecoder()


def parse_log_tail(
    body: bytes, base: int, cursor: LogCursor, *, final: bool = False
) -> tuple[list[Any], LogCursor]:
    """New log entries in ``body`` (which starts at byte ``base`` of the whole log) after ``cursor``.

    JSON logs are decoded object by object from the cursor's offset, so finding new lines costs
    in proportion to the new lines. Plain-text logs are split into complete lines.
    """
    start = cursor.offset - base
    stripped = body.lstrip()
    # A ranged JSON tail starts at a separator, the next entry or the closing bracket; a ranged
    # plain-text tail starts at the next line, which must not be fed to the JSON decoder.
    is_json = (
        stripped[:1] == b"[" if base == 0 else body.lstrip(b",\n\r\t ")[:1] in (b"{", b"[", b'"', b"]", b"")
    )
    if base == 0 and not is_json:
        return _parse_text_tail(body, cursor, final, whole=True)
    if not is_json:
        lines, tail = _parse_text_tail(body, LogCursor(cursor.count, max(start, 0)), final)
        return lines, LogCursor(tail.count, base + tail.offset)
    if base == 0 and (cursor.offset <= 0 or not _is_entry_boundary(body, start)):
        # First read, or the server rewrote the log: parse it whole and skip what was seen.
        try:
            entries = json.loads(body)
        except ValueError:
            return _parse_text_tail(body, LogCursor(cursor.count, 0), final, whole=True)
        if not isinstance(entries, list):
            entries = [entries]
        end = body.rstrip().rfind(b"]")
        return entries[cursor.count :], LogCursor(len(entries), max(end, 0))
    text = body[max(start, 0) :].decode("utf-8", "replace")
    new: list[Any] = []
    pos = 0
    consumed = 0
    length = len(text)
    while pos < length:
        char = text[pos]
        if char in " \t\r\n,":
            pos += 1
            continue
        if char == "]":
            break
        try:
            obj, end_pos = _DECODER.raw_decode(text, pos)
        except ValueError:
            break  # A partial entry at the end of a ranged read: pick it up next time.
        new.append(obj)
        pos = end_pos
        consumed = pos
    if not new:
        return new, cursor  # nothing new: keep the cursor object (one less allocation per idle poll)
    offset = base + max(start, 0) + len(text[:consumed].encode("utf-8"))
    return new, LogCursor(cursor.count + len(new), offset)


def _is_entry_boundary(body: bytes, position: int) -> bool:
    """True when ``position`` sits right after one whole entry, i.e. the log only grew."""
    if position <= 1 or position > len(body):
        return False
    return body[position - 1 : position] == b"}" and body[position:].lstrip()[:1] in (b",", b"]")


def _parse_text_tail(
    body: bytes, cursor: LogCursor, final: bool, *, whole: bool = False
) -> tuple[list[Any], LogCursor]:
    """Complete new lines of a plain-text log. ``whole``: ``body`` is the whole log, so a cursor
    with a count and no offset (a reader stopped part-way through a batch) skips that many lines."""
    start = min(cursor.offset, len(body))
    chunk = body[start:]
    cut = len(chunk) if final else chunk.rfind(b"\n") + 1
    lines = [line for line in chunk[:cut].decode("utf-8", "replace").splitlines() if line.strip()]
    if whole and start == 0 and cursor.count:
        lines = lines[cursor.count :]
        return lines, LogCursor(cursor.count + len(lines), cut)
    return lines, LogCursor(cursor.count + len(lines), start + cut)


def run_log_request(run_id: int | str, cursor: LogCursor) -> tuple[str, dict[str, str] | None]:
    """Path and headers that ask for the run log past ``cursor`` (just the new bytes, by ``Range``)."""
    headers = {"Range": f"bytes={cursor.offset}-"} if cursor.offset > 0 else None
    return object_path("runs", run_id) + "log/", headers


def run_log_from_reply(
    client: ClientCore, reply: Reply, path: str, cursor: LogCursor, *, final: bool = False
) -> tuple[list[Any], LogCursor]:
    """New entries and cursor from a run-log answer, for either transport.

    416 means nothing new past the offset; a server that ignores ``Range`` sends the whole log,
    which is parsed from the cursor's offset onwards.
    """
    if reply.status_code == 416:
        return [], cursor
    client._raise_for_status(reply, "GET", path)
    base = 0
    if reply.status_code == 206:
        content_range = reply.headers.get("Content-Range", "")
        try:
            base = int(content_range.split()[1].split("-")[0])
        except (IndexError, ValueError):
            base = cursor.offset
    return parse_log_tail(reply.content, base, cursor, final=final)


class RunsMixin(ResourceMixin):
    """Masking runs (``/api/runs/``)."""

    def list_runs(
        self,
        *,
        run_status: str | None = None,
        ruleset_name: str | None = None,
        page_size: int | None = 100,
        max_pages: int | None = None,
        **filters: Any,
    ) -> Iterator[dict[str, Any]]:
        """Runs, newest first where the server orders them so; follows pagination."""
        params: dict[str, Any] = {k: v for k, v in filters.items() if v is not None}
        if run_status:
            params["run_status"] = run_status
        if ruleset_name:
            params["ruleset_name"] = ruleset_name
        if page_size:
            params.update(limit=page_size, offset=0)
        return self.client.paginate(RUNS_PATH, params, max_pages=max_pages)

    def get_run(self, run_id: int | str) -> dict[str, Any]:
        result: dict[str, Any] = self.client.request_json("GET", object_path("runs", run_id))
        return result

    def get_run_status(self, run_id: int | str) -> str:
        return str(self.get_run(run_id).get("status", ""))

    def cancel_run(self, run_id: int | str) -> dict[str, Any] | None:
        """Ask DataMasque to cancel; a repeated cancel is harmless, so it may be retried."""
        result: dict[str, Any] | None = self.client.request_json(
            "POST", object_path("runs", run_id) + "cancel/", idempotent=True
        )
        return result

    def find_runs(
        self, name: str, *, source_connection: str | None = None, max_pages: int = 10
    ) -> list[dict[str, Any]]:
        """Runs with exactly this name (optionally on this connection), newest first."""
        found = []
        for run in self.list_runs(max_pages=max_pages):
            if run.get("name") != name:
                continue
            source = run.get("source_connection") or run.get("connection")
            if isinstance(source, Mapping):
                source = source.get("id")
            if source_connection and source and str(source) != source_connection:
                continue
            found.append(run)
        found.sort(key=lambda r: int(r.get("id", 0)) if str(r.get("id", "")).isdigit() else 0, reverse=True)
        return found

    def start_run(
        self,
        *,
        connection: str,
        ruleset: str,
        name: str | None = None,
        options: Mapping[str, Any] | None = None,
        destination_connection: str | None = None,
        mask_type: str | None = None,
        resolve_names: bool = True,
    ) -> dict[str, Any]:
        """Start one masking run and return it.

        The start request is never blindly repeated: when its response is lost (dropped
        connection, timeout, gateway error) the run is looked up by its name first, and only a
        confirmed absence lets the start be sent again.
        """
        clean_options = validate_run_options(options)
        if resolve_names:
            connection = self.resolve_connection_id(connection)  # type: ignore[attr-defined]
            ruleset = self.resolve_ruleset_id(ruleset)  # type: ignore[attr-defined]
            if destination_connection:
                destination_connection = self.resolve_connection_id(destination_connection)  # type: ignore[attr-defined]
        run_name = name or f"airflow-{uuid.uuid4().hex[:12]}"
        payload: dict[str, Any] = {
            "name": run_name,
            "connection": connection,
            "ruleset": ruleset,
            "options": clean_options,
        }
        if destination_connection:
            payload["destination_connection"] = destination_connection
        if mask_type:
            payload["mask_type"] = mask_type
        policy = self.client.config.retry
        for attempt in range(policy.max_retries + 1):
            try:
                result: dict[str, Any] = self.client.request_json("POST", RUNS_PATH, json_body=payload)
                return result
            except DataMasqueConflictError:
                # After a lost response, the active run on the connection may be our own.
                existing = self.find_runs(run_name, source_connection=connection) if attempt else []
                if existing:
                    return existing[0]
                raise
            except (DataMasqueTransportError, DataMasqueApiError) as exc:
                ambiguous = isinstance(exc, DataMasqueTransportError) or exc.status in (500, 502, 503, 504)
                if not ambiguous or attempt >= policy.max_retries:
                    raise
                log.warning(
                    "Starting DataMasque run %r got no clear answer (%s); looking it up before retrying",
                    run_name,
                    exc,
                )
                time.sleep(policy.delay(attempt))
                try:
                    existing = self.find_runs(run_name, source_connection=connection)
                except DataMasqueError as lookup_exc:
                    # Never risk a second run: stop, and say the run may exist.
                    raise DataMasqueTransportError(
                        f"Starting DataMasque run {run_name!r} got no clear answer ({exc}), and looking "
                        f"it up by name failed too ({lookup_exc}). The run may have started: a retry "
                        "of this task finds it by name instead of starting another."
                    ) from lookup_exc
                if existing:
                    log.info("DataMasque run %s was created despite the lost response", existing[0].get("id"))
                    return existing[0]
        raise AssertionError("unreachable")  # pragma: no cover

    # -- logs -------------------------------------------------------------------------------------

    def get_run_log(self, run_id: int | str) -> list[Any]:
        """The whole run log: a list of entries (JSON servers) or of text lines (older servers)."""
        entries, _ = self.get_run_log_since(run_id, LogCursor(), final=True)
        return entries

    def get_run_log_since(
        self, run_id: int | str, cursor: LogCursor | Mapping[str, int] | None = None, *, final: bool = False
    ) -> tuple[list[Any], LogCursor]:
        """Entries added since ``cursor``, and the new cursor.

        Asks for just the new bytes with ``Range``; a server that ignores it sends the whole log,
        which is parsed from the cursor's offset onwards.
        """
        current = LogCursor.from_value(cursor)
        path, headers = run_log_request(run_id, current)
        response = self.client.request("GET", path, headers=headers, check=False)
        return run_log_from_reply(self.client, response, path, current, final=final)

    # -- reports ----------------------------------------------------------------------------------

    @contextmanager
    def open_sdd_report(self, run_id: int | str) -> Iterator[requests.Response]:
        """A streamed response for the run's SDD report CSV; closed when the block ends."""
        response = self.client.request("GET", object_path("runs", run_id) + "sdd-report/", stream=True)
        try:
            yield response
        finally:
            response.close()

    def get_sdd_report(self, run_id: int | str) -> str:
        return str(self.client.request("GET", object_path("runs", run_id) + "sdd-report/").text)

    def get_run_report(self, run_id: int | str) -> str:
        return str(self.client.request("GET", object_path("runs", run_id) + "run-report/").text)

    def has_sdd_report(self, run_id: int | str) -> bool:
        try:
            with self.open_sdd_report(run_id):
                return True
        except DataMasqueNotFoundError:
            return False
